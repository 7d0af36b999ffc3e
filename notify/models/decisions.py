"""The decision taken for a notification when it was claimed: why it went out or did not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base


class NotificationDecision(Base):
    """One row per decided notification, replaced at each later claim (a retry decides
    again). Holds ids, categories, reasons, times and the person's quiet-hours window and
    zone, never an address or a name (:mod:`notify.people.decisions` builds ``record``).
    Deleted with its notification, and on the person's erasure."""

    __tablename__ = "notification_decisions"

    notification_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    decided_at: Mapped[datetime]
    record: Mapped[dict[str, Any]]
