"""``notify keys …``: API keys, one per producing service."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from notify.cli.support import CommandGroup, fail, sessions_for, settings
from notify.producers.api_keys import SCOPES, list_keys, revoke

keys_app = CommandGroup(help="API keys: one per producing service, each with its scopes.")
SCOPE_HELP = f"A scope; repeat for more. The scopes: {', '.join(sorted(SCOPES))}."


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(metavar="NAME", help="Who the key is for.")],
    scope: Annotated[list[str], typer.Option(metavar="SCOPE", help=SCOPE_HELP)],
) -> None:
    """Make an API key. The key is printed once, alone on the last line; only its hash is kept."""
    from notify.db import make_session_factory, open_database
    from notify.operators import audit
    from notify.producers.api_keys import UnknownScopeError, create_key

    sessions = make_session_factory(open_database(settings()))
    try:
        with sessions.begin() as session:
            key, secret = create_key(session, name, scope)
            audit.record(session, "key.create", f"key:{key.id}", scopes=key.scopes)
    except UnknownScopeError as error:
        fail(str(error))
    except SQLAlchemyError as error:
        fail(f"cannot store the key (did you run `notify db upgrade`?): {type(error).__name__}")
    typer.echo(f"key {key.id} '{name}' with scopes {key.scopes}", err=True)
    typer.echo(secret)


@keys_app.command("list")
def keys_list() -> None:
    """Every API key: id, name, scopes, created, revoked (never the secret)."""
    table = Table("id", "name", "scopes", "created", "revoked")
    with sessions_for(settings())() as session:
        for key in list_keys(session):
            revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
            created = key.created_at.isoformat(timespec="seconds")
            table.add_row(str(key.id), key.name, key.scopes, created, revoked)
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id, from `notify keys list`.")],
) -> None:
    """Revoke a key by id; the web refuses it within NOTIFY_API_KEY_CACHE_SECONDS."""
    from notify.operators import audit

    config = settings()
    with sessions_for(config).begin() as session:
        if not revoke(session, key_id):
            fail(f"no active key {key_id}")
        audit.record(session, "key.revoke", f"key:{key_id}")
    typer.echo(
        f"key {key_id} revoked; refused within {config.api_key_cache_seconds:g} s "
        "by every web process"
    )
