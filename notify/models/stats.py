"""Daily counts of notifications: kept after the rows themselves are deleted by retention, and
made once for each finished hour, so the stats read counts rather than rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base, utcnow


class DailyCount(Base):
    """How many notifications of a day ended how; no person, no address, no id."""

    __tablename__ = "daily_counts"
    __table_args__ = (UniqueConstraint("day", "category", "template", "status", "reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, UTC
    category: Mapped[str] = mapped_column(String(50))
    template: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(40))  # suppression reason, else ""
    count: Mapped[int] = mapped_column(Integer)


class CountedHour(Base):
    """A UTC hour whose notifications are all in ``daily_counts``
    (:func:`notify.privacy.daily_counts.count_finished_hours`): no row of it can change any
    more, so its counts are read from there and its rows are never counted again."""

    __tablename__ = "counted_hours"

    hour: Mapped[str] = mapped_column(String(13), primary_key=True)  # YYYY-MM-DD HH, UTC
    counted_at: Mapped[datetime] = mapped_column(default=utcnow)
