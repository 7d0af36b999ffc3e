"""``notify users …``: the people notify mails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from notify.cli.support import CommandGroup, fail, sessions_for, settings

users_app = CommandGroup(help="The people notify mails.")


@users_app.command("import")
def users_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV (user_id,email,locale,timezone; with a header row also first_name, name and"
            " attribute columns) or .jsonl lines."
        ),
    ],
) -> None:
    """Upsert users from a file; bad rows are listed with their line number and skipped."""
    from notify.people.importing import Format, import_users

    if not file.is_file():
        fail(f"no such file: {file}")
    fmt: Format = "jsonl" if file.suffix.lower() in (".jsonl", ".ndjson") else "csv"
    config = settings()
    with file.open(encoding="utf-8-sig", newline="") as lines:
        result = import_users(sessions_for(config), lines, fmt, hash_key=config.hash_key)
    for error in result.errors:
        typer.echo(f"line {error.line}: {error.error}", err=True)
    typer.echo(f"imported {result.imported}, rejected {result.rejected}")
    if result.rejected:
        raise typer.Exit(1)
