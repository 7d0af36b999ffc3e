"""A value no configured data key decrypts, met by key rotation and by the command line:
rotation re-encrypts the rest, leaves that one as it is, counts it and fails; a command that
needs it prints one line, never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Text, insert, select, type_coerce, update

from notify.db import SessionFactory
from notify.models import Recipient
from notify.privacy import key_rotation
from tests.domain.people import person, under_another_key

ROOT = Path(__file__).resolve().parents[2]
LOST = "lost@example.com"


def test_rotation_re_encrypts_what_it_reads_and_counts_what_it_cannot(
    file_sessions: SessionFactory,
) -> None:
    sessions = file_sessions
    url = str(sessions.kw["bind"].url)  # for the commands, on the same SQLite file
    with sessions.begin() as session:
        readable = person(session, "u-readable")
        sealed = under_another_key(LOST)
        session.execute(insert(Recipient).values(public_id="p-lost", user_id="u-lost"))
        session.execute(update(Recipient).where(Recipient.user_id == "u-lost").values(email=sealed))
    stored_before = _stored_email(sessions, "u-lost")

    rotation = key_rotation.reencrypt(sessions)

    assert rotation.undecryptable == {"recipients.email": 1}
    assert not rotation.complete and rotation.changed >= 1
    assert _stored_email(sessions, "u-lost") == stored_before  # left as it was
    with sessions() as session:
        email = session.scalar(select(Recipient.email).where(Recipient.id == readable))
    assert email == "u-readable@example.com"

    command = _command(url, "privacy", "rotate-keys")
    assert command.returncode == 1, command.stderr
    assert re.search(r"(?<!\d)1 in recipients\.email\b", command.stderr), command.stderr
    assert "can now be removed" not in command.stdout + command.stderr
    assert "Traceback" not in command.stderr and LOST not in command.stderr

    export = _command(url, "privacy", "export", "u-lost")
    assert export.returncode == 2, export.stderr
    assert "NOTIFY_DATA_KEYS" in export.stderr and "Traceback" not in export.stderr
    assert LOST not in export.stdout + export.stderr


def _stored_email(sessions: SessionFactory, user_id: str) -> str:
    """The address column as stored: its ciphertext."""
    with sessions() as session:
        return str(
            session.scalar(
                select(type_coerce(Recipient.email, Text)).where(Recipient.user_id == user_id)
            )
        )


def _command(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``notify ARGUMENTS`` on the database at ``database_url``, with this process's keys."""
    return subprocess.run(
        [sys.executable, "-m", "notify.cli", *arguments],
        cwd=ROOT,
        env={**os.environ, "NOTIFY_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
