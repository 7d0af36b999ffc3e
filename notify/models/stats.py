"""Daily counts of notifications, kept after the rows themselves are deleted by retention."""

from __future__ import annotations

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base


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
