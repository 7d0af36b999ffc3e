"""The outbox: one row per notification, written before anything is enqueued.

On PostgreSQL the table is partitioned by month of ``created_at`` (:mod:`notify.partitions`),
so its primary key there is ``(id, created_at)`` and every unique constraint holds
``created_at``: the idempotency keys live in a table of their own (:mod:`idempotency_keys
<notify.models.idempotency_keys>`), and a campaign's messages all carry the moment its planning
began (``Campaign.planned_at``), so ``(campaign_id, recipient_id, created_at)`` is unique per
campaign as ``(campaign_id, recipient_id)`` would be. SQLite keeps one table.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from notify.models.base import Base, EncryptedJSON, enum_column_type, utcnow
from notify.models.recipients import Recipient
from notify.partitions import month_of, next_month, start_of


class NotificationStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    SUPPRESSED = "suppressed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # a campaign's message that was never sent because it was cancelled

    @classmethod
    def in_flight(cls) -> tuple[NotificationStatus, ...]:
        """Not finished yet: waiting for a worker, or handed to one."""
        return (cls.QUEUED, cls.SENDING)


_MILLISECOND = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST_MILLIS = (datetime(9000, 1, 1, tzinfo=UTC) - _EPOCH) // _MILLISECOND


def new_notification_id(created_at: datetime | None = None) -> str:
    """A new notification id. Given the row's ``created_at``, a UUID version 7 (RFC 9562) whose
    timestamp is that moment to the millisecond, so the id tells which month's partition holds
    the row (:func:`with_ids`); the service makes every id this way. Without it, a random UUID
    version 4, which tells nothing (the ORM's default, for rows made by hand)."""
    if created_at is None:
        return str(uuid.uuid4())
    millis = (created_at - _EPOCH) // _MILLISECOND
    random_bits = secrets.randbits(74)
    value = (
        (millis & (2**48 - 1)) << 80
        | 0x7 << 76  # version
        | (random_bits >> 62) << 64  # rand_a, 12 bits
        | 0b10 << 62  # variant
        | random_bits & (2**62 - 1)  # rand_b, 62 bits
    )
    return str(uuid.UUID(int=value))


def created_at_of(notification_id: str) -> datetime | None:
    """The ``created_at`` an id of :func:`new_notification_id` carries (to the millisecond), or
    None for any other id."""
    try:
        parsed = uuid.UUID(notification_id)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    millis = parsed.int >> 80
    if millis >= _LATEST_MILLIS:
        return None  # a made-up id, past any month the service makes (and past datetime's)
    return _EPOCH + millis * _MILLISECOND


def month_bounds(notification_ids: Sequence[str]) -> tuple[datetime, datetime] | None:
    """From the start of the month the earliest of ``notification_ids`` was made in to the end
    of the latest's, when every id carries its creation time; else None."""
    times = [created_at_of(notification_id) for notification_id in notification_ids]
    known = [moment for moment in times if moment is not None]
    if not known or len(known) < len(times):
        return None
    return start_of(month_of(min(known))), start_of(next_month(month_of(max(known))))


def with_ids(notification_ids: Sequence[str]) -> ColumnElement[bool]:
    """``Notification.id IN ids``, and when every id carries its creation time, the months they
    were made in as well (:func:`month_bounds`), so PostgreSQL reads only those months'
    partitions instead of probing every partition's index. The same rows either way, as long
    as a row's ``created_at`` is the time its id carries (the service never changes it)."""
    condition = Notification.id.in_(list(notification_ids))
    bounds = month_bounds(notification_ids)
    if bounds is None:
        return condition
    return and_(
        condition, Notification.created_at >= bounds[0], Notification.created_at < bounds[1]
    )


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("campaign_id", "recipient_id", "created_at"),
        Index("ix_notifications_batch_status", "batch_id", "status"),
        Index("ix_notifications_created_at", "created_at"),
        Index("ix_notifications_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_notification_id)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"), index=True)
    template: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(50))
    data: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON())  # encrypted at rest
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign_batches.id", ondelete="SET NULL")
    )
    status: Mapped[NotificationStatus] = mapped_column(
        enum_column_type(NotificationStatus, "notification_status"),
        default=NotificationStatus.QUEUED,
    )
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]
    content_removed_at: Mapped[datetime | None]  # retention or erasure emptied ``data``
    request_id: Mapped[str | None] = mapped_column(String(64))  # the API request's, for logs

    recipient: Mapped[Recipient] = relationship(lazy="raise")
