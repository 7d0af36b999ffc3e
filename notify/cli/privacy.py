"""``notify privacy …`` and ``notify keys list|revoke``: operator commands for personal data."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from notify.cli.support import fail, sessions_for, settings
from notify.people import recipients
from notify.privacy import rights as privacy
from notify.producers.api_keys import list_keys, revoke

privacy_app = typer.Typer(
    help="Access, erasure and encryption of personal data.", no_args_is_help=True
)


@privacy_app.command("export")
def export(user_id: str) -> None:
    """Print everything held about one person as JSON."""
    config = settings()
    with sessions_for(config)() as session:
        recipient = recipients.get_by_user_id(session, user_id)
        if recipient is None or recipient.erased_at is not None:
            fail(f"no user {user_id!r}")
        document = privacy.export(
            session, recipient, hash_key=config.hash_key, defaults=config.default_subscriptions
        )
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


@privacy_app.command("erase")
def erase(user_id: str) -> None:
    """Erase one person (safe to repeat)."""
    config = settings()
    with sessions_for(config).begin() as session:
        recipient = recipients.get_by_user_id(session, user_id)
        if recipient is not None:
            privacy.erase(session, recipient, hash_key=config.hash_key, actor="cli")
    typer.echo(f"user {user_id!r} is erased")


@privacy_app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt stored personal data under the newest of NOTIFY_DATA_KEYS."""
    count = privacy.reencrypt(sessions_for(settings()))
    typer.echo(f"re-encrypted {count} values; older keys can now be removed")


def keys_list() -> None:
    """Every API key: id, name, scopes, created, revoked (never the secret)."""
    table = Table("id", "name", "scopes", "created", "revoked")
    with sessions_for(settings())() as session:
        for key in list_keys(session):
            revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
            created = key.created_at.isoformat(timespec="seconds")
            table.add_row(str(key.id), key.name, key.scopes, created, revoked)
    Console().print(table)


def keys_revoke(key_id: int) -> None:
    """Revoke a key by id; it is refused from the next request on."""
    with sessions_for(settings()).begin() as session:
        if not revoke(session, key_id):
            fail(f"no active key {key_id}")
    typer.echo(f"key {key_id} revoked")
