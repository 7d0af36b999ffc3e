"""``notify privacy …``: operator commands for personal data."""

from __future__ import annotations

import json

import typer

from notify.cli.support import fail, sessions_for, settings
from notify.people import recipients
from notify.privacy import key_rotation, rights

privacy_app = typer.Typer(
    help="Access, erasure and encryption of personal data.", no_args_is_help=True
)


@privacy_app.command("export")
def export(user_id: str) -> None:
    """Print everything held about one person as JSON."""
    config = settings()
    with sessions_for(config)() as session:
        try:
            recipient = recipients.require_live(session, user_id)
        except recipients.UnknownRecipientError:
            fail(f"no user {user_id!r}")
        document = rights.export(
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
            rights.erase(session, recipient, hash_key=config.hash_key, actor="cli")
    typer.echo(f"user {user_id!r} is erased")


@privacy_app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt stored personal data under the newest of NOTIFY_DATA_KEYS."""
    count = key_rotation.reencrypt(sessions_for(settings()))
    typer.echo(f"re-encrypted {count} values; older keys can now be removed")
