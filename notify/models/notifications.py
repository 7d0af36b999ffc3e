"""The outbox: one row per notification, written before anything is enqueued.

On PostgreSQL the table is partitioned by month of ``created_at`` (:mod:`notify.partitions`),
so its primary key there is ``(id, created_at)`` and every unique constraint holds
``created_at``: the idempotency keys live in a table of their own (:mod:`idempotency_keys
<notify.models.idempotency_keys>`), and a campaign's messages all carry the moment its planning
began (``Campaign.planned_at``), so ``(campaign_id, recipient_id, created_at)`` is unique per
campaign as ``(campaign_id, recipient_id)`` would be. SQLite keeps one table.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from notify.models.base import Base, EncryptedJSON, enum_column_type, utcnow
from notify.models.recipients import Recipient


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


def new_notification_id() -> str:
    return str(uuid.uuid4())


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
