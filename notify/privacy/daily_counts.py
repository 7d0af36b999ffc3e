"""Daily counts: how notifications are bucketed by day and outcome, and the roll-up that keeps
those counts when retention deletes the rows. Shared by retention and the stats endpoint."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from notify.db import utc_text
from notify.models import DailyCount, Notification, NotificationStatus


def day_of(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as text ``YYYY-MM-DD``, on either database."""
    return utc_text(session, column, "day")


def suppression_reason_column() -> Any:
    """The reason of a suppressed row ("" for every other outcome: free text never groups)."""
    return case(
        (
            Notification.status == NotificationStatus.SUPPRESSED,
            func.coalesce(Notification.reason, ""),
        ),
        else_="",
    )


def roll_up(session: Session, which: ColumnElement[bool]) -> int:
    """Add the notifications ``which`` selects, about to be deleted, to the daily counts, so
    aggregates survive; returns how many rows it counted."""
    grouped = session.execute(
        select(
            day_of(session, Notification.created_at).label("day"),
            Notification.category,
            Notification.template,
            Notification.status,
            suppression_reason_column().label("reason"),
            func.count(),
        )
        .where(which)
        .group_by(
            "day", Notification.category, Notification.template, Notification.status, "reason"
        )
    ).all()
    counted = 0
    for day, category, template, status, reason_key, count in grouped:
        counted += int(count)
        key = {
            "day": str(day),
            "category": category,
            "template": template,
            "status": status,
            "reason": reason_key,
        }
        row = session.scalars(select(DailyCount).filter_by(**key)).one_or_none()
        if row is None:
            session.add(DailyCount(**key, count=int(count)))
        else:
            row.count += int(count)
    session.flush()
    return counted
