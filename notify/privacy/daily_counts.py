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


def suppression_reason_column(rows: Any = None) -> Any:
    """The reason of a suppressed row ("" for every other outcome: free text never groups), of
    ``rows`` (the notifications table unless given: a detached month's)."""
    columns = (rows if rows is not None else Notification.__table__).c
    return case(
        (
            columns.status == NotificationStatus.SUPPRESSED.value,
            func.coalesce(columns.reason, ""),
        ),
        else_="",
    )


def roll_up(session: Session, which: ColumnElement[bool] | None = None, rows: Any = None) -> int:
    """Add the notifications about to be deleted to the daily counts, so aggregates survive;
    returns how many rows it counted. They are those ``which`` selects of ``rows`` (the
    notifications table unless given: a detached month's, as a whole when ``which`` is None)."""
    source = rows if rows is not None else Notification.__table__
    columns = source.c
    statement = (
        select(
            day_of(session, columns.created_at).label("day"),
            columns.category,
            columns.template,
            columns.status,
            suppression_reason_column(source).label("reason"),
            func.count(),
        )
        .select_from(source)
        .group_by("day", columns.category, columns.template, columns.status, "reason")
    )
    grouped = session.execute(statement if which is None else statement.where(which)).all()
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
