"""``notify privacy …``: operator commands for personal data."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from notify.cli.support import CommandGroup, fail, sessions_for, settings
from notify.people import recipients
from notify.privacy import key_rotation, rights

privacy_app = CommandGroup(help="Access, erasure and encryption of personal data.")
UserId = Annotated[str, typer.Argument(help="The producer's id for the person.")]


@privacy_app.command("export")
def export(user_id: UserId) -> None:
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
def erase(user_id: UserId) -> None:
    """Erase one person (safe to repeat)."""
    config = settings()
    with sessions_for(config).begin() as session:
        recipient = recipients.get_by_user_id(session, user_id, defer_encrypted=True)
        if recipient is not None:
            rights.erase(session, recipient, hash_key=config.hash_key, actor="cli")
    typer.echo(f"user {user_id!r} is erased")


@privacy_app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt stored personal data under the newest of NOTIFY_DATA_KEYS."""
    rotation = key_rotation.reencrypt(sessions_for(settings()))
    if rotation.complete:
        typer.echo(f"re-encrypted {rotation.changed} values; older keys can now be removed")
        return
    left = ", ".join(f"{count} in {name}" for name, count in sorted(rotation.undecryptable.items()))
    typer.echo(
        f"notify: re-encrypted {rotation.changed} values, but none of NOTIFY_DATA_KEYS decrypts"
        f" {left}; keep every key, add the one they were stored under, and run this again",
        err=True,
    )
    raise typer.Exit(1)
