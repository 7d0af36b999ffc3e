"""Preferences (one row per recipient and category; an absent row means the category default), the
append-only consent log, and the suppression list keyed by a hash of the address."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base, enum_column_type, utcnow


class ConsentSource(StrEnum):
    ONE_CLICK = "one_click"  # RFC 8058 POST to /u/<token> from a mail client (not the page)
    MAILTO = "mailto"  # a mail to the List-Unsubscribe mailto: address (notify inbound)
    PAGE = "page"  # a button on the page /u/<token>: unsubscribe, stop all, or subscribe again
    UNDO = "undo"  # re-subscribe offered right after an unsubscribe
    PREFERENCE_CENTRE = "preference_centre"
    API = "api"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    OPERATOR = "operator"


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "hard_bounce"  # stops all mail to the address
    COMPLAINT = "complaint"  # stops non-essential mail
    OPERATOR = "operator"  # stops non-essential mail
    ERASED = "erased"  # stops non-essential mail until a fresh opt-in


class Preference(Base):
    __tablename__ = "preferences"
    __table_args__ = (UniqueConstraint("recipient_id", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(50))
    subscribed: Mapped[bool]
    source: Mapped[str] = mapped_column(String(30))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Pause(Base):
    """A person's pause of one optional category: none of its mail until ``until``, then it
    resumes by itself (a row whose ``until`` has passed means nothing)."""

    __tablename__ = "pauses"

    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipients.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(50), primary_key=True)
    until: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentEvent(Base):
    """Append-only: rows are inserted, never updated (proof of consent, GDPR Art. 7(1))."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int | None] = mapped_column(
        ForeignKey("recipients.id", ondelete="SET NULL"), index=True
    )
    category: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(40))  # subscribed, unsubscribed, suppressed:...
    source: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str | None] = mapped_column(String(100))  # API key name, for API and operator
    notification_id: Mapped[str | None] = mapped_column(String(36))
    campaign_id: Mapped[int | None] = mapped_column(index=True)  # per-campaign unsubscribes
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # The version of the category's wording current when the event was made (None: an event
    # about all categories, or one logged before versions were kept).
    category_version: Mapped[str | None] = mapped_column(String(20))


class Suppression(Base):
    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(
        enum_column_type(SuppressionReason, "suppression_reason")
    )
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SoftBounce(Base):
    """Soft bounces of one address (by its keyed hash, never the address): how many days of
    the current window had one (notify.people.soft_bounces holds the rule)."""

    __tablename__ = "soft_bounces"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_at: Mapped[datetime] = mapped_column(default=utcnow)  # the window's start
    last_day: Mapped[str] = mapped_column(String(10))  # UTC day of the latest, YYYY-MM-DD
    days: Mapped[int] = mapped_column(default=1)  # distinct UTC days with one, in the window
    count: Mapped[int] = mapped_column(default=1)
