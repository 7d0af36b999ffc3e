"""Recipients: the people we mail, keyed by the producer's ``user_id``."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from notify.message.personal import PersonalFields
from notify.models.base import Base, EncryptedJSON, EncryptedText, utcnow


def new_public_id() -> str:
    """Opaque id used in links and tokens instead of the address or the producer's id."""
    return secrets.token_urlsafe(12)


class Recipient(Base):
    __tablename__ = "recipients"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    user_id: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(EncryptedText())  # encrypted at rest
    # What the person is called and what else templates may say about them (personal data,
    # encrypted at rest, removed by erasure): notify.people.user_row sets the limits.
    first_name: Mapped[str | None] = mapped_column(EncryptedText())
    name: Mapped[str | None] = mapped_column(EncryptedText())
    attributes: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON())
    email_hash: Mapped[str | None] = mapped_column(String(64), index=True)  # HMAC, for lookups
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # No optional mail from start to end ("HH:MM", the person's time zone; both or neither):
    # such mail waits for the end (notify.people.quiet_hours).
    quiet_hours_start: Mapped[str | None] = mapped_column(String(5))
    quiet_hours_end: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None]

    def personal_fields(self) -> PersonalFields:
        return PersonalFields(self.first_name, self.name, self.attributes or {})
