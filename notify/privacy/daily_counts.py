"""Daily counts: how notifications are bucketed by day and outcome, the roll-up that keeps those
counts when retention deletes the rows, and the counting of finished days. Shared by retention,
the periodic task and the stats.

A UTC day is *finished* once it ended more than :data:`COUNT_AFTER` ago, no row of it is in
flight (``queued`` or ``sending``), and no campaign dated that day is still planning rows.
Nothing changes a finished day's rows any more: every outcome but ``queued`` and ``sending`` is
final, a transactional row is dated when it is submitted and a campaign's rows when its
planning began. :func:`count_finished_days` adds such a day's rows to ``daily_counts`` once and
records it in ``counted_days`` in the same transaction; from then on the stats read its counts
instead of its rows, and retention, which keeps counts of the rows it deletes, skips its rows.
A day with a row held back (quiet hours, a retry, a stuck row, a campaign paused) is counted
by the first run after that row ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notify.db import SessionFactory, utc_text
from notify.models import (
    Campaign,
    CampaignStatus,
    CountedDay,
    DailyCount,
    Notification,
    NotificationStatus,
)
from notify.models.base import utcnow

log = logging.getLogger(__name__)
COUNT_AFTER = timedelta(hours=1)
"""How long after its end a day may be counted: longer than any transaction that inserts a row
dated that day can still be open."""
RETENTION_MARGIN_DAYS = 2
"""Days this near the log retention's cutoff are never counted, so counting and retention never
handle one day at once (retention counts the rows it deletes of days not counted)."""


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
    """Add notifications to the daily counts: rows about to be deleted, so aggregates survive, or
    a finished day's; returns how many rows it counted. They are those ``which`` selects of
    ``rows`` (the notifications table unless given: a detached month's, as a whole when
    ``which`` is None), less the rows of days already counted (``counted_days``)."""
    source = rows if rows is not None else Notification.__table__
    columns = source.c
    day = day_of(session, columns.created_at)
    statement = (
        select(
            day.label("day"),
            columns.category,
            columns.template,
            columns.status,
            suppression_reason_column(source).label("reason"),
            func.count(),
        )
        .select_from(source)
        .where(day.not_in(select(CountedDay.day)))
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


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants a day starts and ends (exclusive)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def is_finished(session: Session, day: date, now: datetime) -> bool:
    """Whether no row dated ``day`` can change or appear any more (see the module's docstring)."""
    start, end = day_bounds(day)
    if now < end + COUNT_AFTER:
        return False
    in_flight = exists().where(
        Notification.created_at >= start,
        Notification.created_at < end,
        Notification.status.in_(NotificationStatus.in_flight()),
    )
    planning = exists().where(
        Campaign.planned_at >= start,
        Campaign.planned_at < end,
        Campaign.planning_done.is_(False),
        Campaign.status.not_in((CampaignStatus.COMPLETED, CampaignStatus.CANCELLED)),
    )
    return not session.scalar(select(in_flight | planning))


def count_day(session: Session, day: date) -> int:
    """Add a finished day's rows to ``daily_counts`` and record the day as counted; how many
    rows. The caller checked :func:`is_finished` in the same transaction. Raises
    ``IntegrityError`` (at flush) if another transaction counted the day first: the caller rolls
    back, so the day is counted once."""
    start, end = day_bounds(day)
    counted = roll_up(
        session, and_(Notification.created_at >= start, Notification.created_at < end)
    )
    session.add(CountedDay(day=day.isoformat()))
    session.flush()
    return counted


def days_to_count(session: Session, today: date, oldest: date) -> Iterator[date]:
    """The days from yesterday back to ``oldest`` not counted yet, newest first."""
    counted = set(
        session.scalars(select(CountedDay.day).where(CountedDay.day >= oldest.isoformat()))
    )
    day = today - timedelta(days=1)
    while day >= oldest:
        if day.isoformat() not in counted:
            yield day
        day -= timedelta(days=1)


def count_finished_days(
    sessions: SessionFactory,
    *,
    log_days: int,
    now: datetime | None = None,
    budget_seconds: float = 60.0,
) -> list[date]:
    """Count each finished day of the log retention window not counted yet, newest first, one
    short transaction each, until ``budget_seconds`` have passed (a later run goes on); returns
    the days counted. Days within :data:`RETENTION_MARGIN_DAYS` of the retention cutoff are
    left to retention. Safe to run twice at once: a day is counted by one of them."""
    now = now or utcnow()
    oldest = (now - timedelta(days=log_days)).date() + timedelta(days=RETENTION_MARGIN_DAYS)
    deadline = time.monotonic() + budget_seconds
    with sessions.begin() as session:
        candidates = list(days_to_count(session, now.date(), oldest))
    done: list[date] = []
    for day in candidates:
        if time.monotonic() > deadline:
            break
        try:
            with sessions.begin() as session:
                if not is_finished(session, day, now):
                    continue
                rows = count_day(session, day)
        except IntegrityError:
            continue  # another run counted it
        log.debug("daily counts: counted %s (%d notifications)", day, rows)
        done.append(day)
    return done
