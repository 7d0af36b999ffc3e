"""``notify operators …``: the people who sign in to the console."""

from __future__ import annotations

from typing import Annotated

import typer

from notify.cli.support import CommandGroup, fail, sessions_for, settings

operators_app = CommandGroup(help="The people who sign in to the console (/console).")


@operators_app.command("create")
def operators_create(
    email: Annotated[str, typer.Option(metavar="ADDRESS", help="The operator's email address.")],
    role: Annotated[
        str,
        typer.Option(
            metavar="ROLE",
            help="marketing (campaigns, imports, stats) or admin (also operators and keys).",
        ),
    ],
) -> None:
    """Create an operator and print their one-time setup link (it works once, for a day)."""
    from notify.operators import accounts, audit

    config = settings()
    try:
        with sessions_for(config).begin() as session:
            link = accounts.create(session, email, role)
            audit.record(session, "operator.create", f"operator:{link.operator_id}", role=role)
    except accounts.OperatorError as error:
        fail(str(error))
    typer.echo(f"{config.public_url}/console/setup/{link.token}")
