"""Producers' status callbacks: the endpoints a key registered, the outbox of events for them,
and each delivery attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base, EncryptedJSON, enum_column_type, utcnow


class CallbackEventStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    DELIVERED = "delivered"  # the receiver answered 2xx
    DEAD = "dead"  # retried for NOTIFY_CALLBACK_RETRY_HOURS without success; replay sends it


class CallbackEndpoint(Base):
    __tablename__ = "callback_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    # {"secrets": ["whsec_…", …]}: newest last, at most two valid at once (rotation)
    secrets: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    disabled_at: Mapped[datetime | None]


class CallbackEvent(Base):
    """One event for one endpoint, written in the transaction of the change it reports."""

    __tablename__ = "callback_events"
    __table_args__ = (Index("ix_callback_events_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # webhook-id: msg_…
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("callback_endpoints.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # ids and statuses, never an address
    status: Mapped[CallbackEventStatus] = mapped_column(
        enum_column_type(CallbackEventStatus, "callback_event_status")
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    give_up_at: Mapped[datetime]  # retried until then (from the change, or from a replay)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[datetime | None]


class CallbackAttempt(Base):
    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(
        ForeignKey("callback_events.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[int] = mapped_column(index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)  # the kind of failure, never the body
    duration_ms: Mapped[int] = mapped_column(default=0)
