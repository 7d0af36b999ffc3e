"""Key rotation: re-encrypt every value at rest under the newest data key."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from notify import crypto
from notify.db import SessionFactory

log = logging.getLogger(__name__)

# Every column stored with notify.crypto (EncryptedText and EncryptedJSON in notify.models).
ENCRYPTED_COLUMNS = (
    ("recipients", "email"),
    ("recipients", "first_name"),
    ("recipients", "name"),
    ("recipients", "attributes"),
    ("notifications", "data"),
    ("callback_endpoints", "secrets"),
)


@dataclass
class Rotation:
    """What :func:`reencrypt` did: how many values it re-encrypted, and how many values of
    each ``table.column`` none of the configured keys decrypts (left as they are)."""

    changed: int = 0
    undecryptable: Counter[str] = field(default_factory=Counter)

    @property
    def complete(self) -> bool:
        """Whether every value read was decrypted and so re-encrypted (a value written meanwhile
        is encrypted by its writer, under the newest key it has), so older keys may go."""
        return not self.undecryptable


def reencrypt(sessions: SessionFactory, *, batch_size: int = 1000) -> Rotation:
    """Re-encrypt every encrypted value under the newest data key.

    Works on the stored tokens as text (never on decrypted objects), a keyset page per short
    transaction, so it can run while the service is live. A value no configured key decrypts
    is left as it is and counted (the rest go on): its key must be added back before it can be
    read or rotated.
    """
    rotation = Rotation()
    for table, column in ENCRYPTED_COLUMNS:
        last: Any = None
        while True:
            with sessions.begin() as session:
                where = f"{column} IS NOT NULL" + ("" if last is None else " AND id > :last")
                rows = session.execute(
                    text(f"SELECT id, {column} FROM {table} WHERE {where} ORDER BY id LIMIT :n"),  # noqa: S608
                    {"last": last, "n": batch_size},
                ).all()
                if not rows:
                    break
                for row_id, token in rows:
                    try:
                        rotated = crypto.rotate_token(token)
                    except crypto.UndecryptableError:
                        rotation.undecryptable[f"{table}.{column}"] += 1
                        continue
                    if rotated != token:
                        # Compare-and-set: a change committed meanwhile (an erasure, a new
                        # address) is never overwritten with the old value.
                        result: Any = session.execute(
                            text(
                                f"UPDATE {table} SET {column} = :token "  # noqa: S608
                                f"WHERE id = :id AND {column} = :old"
                            ),
                            {"token": rotated, "id": row_id, "old": token},
                        )
                        rotation.changed += int(result.rowcount or 0)
                last = rows[-1][0]
    log.info("re-encrypted %d values under the newest data key", rotation.changed)
    if rotation.undecryptable:
        log.error(
            "values no data key decrypts, left as they are: %s",
            ", ".join(f"{name} {count}" for name, count in sorted(rotation.undecryptable.items())),
        )
    return rotation
