"""Idempotency keys: which notification a producer's key made, and from what request.

A table of their own because the notifications table is partitioned by month on PostgreSQL,
where a unique constraint must hold the partition key; here the primary key
``(api_key_id, idempotency_key)`` alone makes a key unique for as long as its notification is
kept. A key is deleted with its notification (retention) and on the person's erasure.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("ix_idempotency_keys_notification_id", "notification_id"),
        Index("ix_idempotency_keys_notification_created_at", "notification_created_at"),
    )

    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # the request's fingerprint
    notification_id: Mapped[str] = mapped_column(String(36))
    notification_created_at: Mapped[datetime]  # finds the notification's partition
