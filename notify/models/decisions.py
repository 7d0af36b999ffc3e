"""The decision taken for a notification when it was claimed: why it went out or did not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base


class NotificationDecision(Base):
    """One row per decided notification, replaced at each later claim (a retry decides
    again). Holds ids, categories, reasons, times and the person's quiet-hours window and
    zone, never an address or a name (:mod:`notify.people.decisions` builds ``record``).
    Deleted with its notification (on PostgreSQL it is partitioned by the notification's month
    like ``notifications``, and retention drops both months together), and on the person's
    erasure. No foreign key: one to a partitioned table would have to be dropped and checked at
    each month's drop; the code that deletes notifications deletes their decisions."""

    __tablename__ = "notification_decisions"

    notification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    notification_created_at: Mapped[datetime] = mapped_column(primary_key=True)
    decided_at: Mapped[datetime]
    record: Mapped[dict[str, Any]]
