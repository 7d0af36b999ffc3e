"""Daily counts: how notifications are bucketed by day and outcome, the roll-up that keeps those
counts when retention deletes the rows, and the counting of finished hours. Shared by
retention, the periodic task and the stats.

A UTC hour is *finished* once it ended more than :func:`settle_time` ago, no row of it is in
flight (``queued`` or ``sending``), and no campaign dated within it is still planning rows.
Nothing changes a finished hour's rows any more: every outcome but ``queued`` and ``sending``
is final, a transactional row is dated when it is submitted and a campaign's rows when its
planning began. :func:`count_finished_hours` adds such an hour's rows to their day's
``daily_counts`` once and records the hour in ``counted_hours`` in the same transaction; from
then on the stats read its counts instead of its rows, and retention, which keeps counts of
the rows it deletes, skips its rows. An hour with a row held back (quiet hours, a retry, a
stuck row, a campaign paused while planning) is counted by the first run after that row ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notify.db import SessionFactory, insert_on_conflict, utc_text
from notify.models import (
    Campaign,
    CampaignStatus,
    CountedHour,
    DailyCount,
    Notification,
    NotificationStatus,
)
from notify.models.base import utcnow

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
COUNT_AFTER = timedelta(minutes=15)
"""The least time after its end an hour may be counted (:func:`settle_time`)."""


def settle_time(task_time_limit_seconds: int) -> timedelta:
    """How long after its end an hour may be counted: longer than any transaction that inserts
    a row dated within it can stay open. A task's ends within ``NOTIFY_TASK_TIME_LIMIT_SECONDS``
    (it is killed then), a request's within seconds; twice the limit, and at least
    :data:`COUNT_AFTER`, also leaves room for clocks that differ between hosts."""
    return max(COUNT_AFTER, timedelta(seconds=2 * task_time_limit_seconds))


RETENTION_MARGIN = timedelta(days=2)
"""Hours this near the log retention's cutoff are never counted, so counting and retention never
handle one hour at once (retention counts the rows it deletes of hours not counted)."""


def day_of(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as text ``YYYY-MM-DD``, on either database."""
    return utc_text(session, column, "day")


def hour_of(session: Session, column: Any) -> Any:
    """The UTC hour of a timestamp column, as text ``YYYY-MM-DD HH``, on either database."""
    return utc_text(session, column, "hour")


def hour_key(start: datetime) -> str:
    """The ``counted_hours`` key of the hour starting at ``start`` (UTC), as :func:`hour_of`."""
    return f"{start.astimezone(UTC):%Y-%m-%d %H}"


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


def roll_up(
    session: Session,
    which: ColumnElement[bool] | None = None,
    rows: Any = None,
    *,
    skip_counted: bool = True,
) -> int:
    """Add notifications to the daily counts: rows about to be deleted, so aggregates survive, or
    a finished hour's; returns how many rows it counted. They are those ``which`` selects of
    ``rows`` (the notifications table unless given: a detached month's, as a whole when
    ``which`` is None), less the rows of hours already counted (``counted_hours``) unless
    ``skip_counted`` is False (:func:`count_hour`, whose hour is not counted)."""
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
        .group_by("day", columns.category, columns.template, columns.status, "reason")
    )
    if skip_counted:
        statement = statement.where(
            hour_of(session, columns.created_at).not_in(select(CountedHour.hour))
        )
    grouped = session.execute(statement if which is None else statement.where(which)).all()
    if not grouped:
        return 0
    # Added in the database, not read and written back: two transactions adding to one day
    # (two hours of it, or an hour and a retired month) both count. In key order, so they
    # lock the day's rows in the same order and wait for each other instead of deadlocking.
    grouped = sorted(grouped, key=lambda row: tuple(str(value) for value in row[:5]))
    upsert = insert_on_conflict(session, DailyCount)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["day", "category", "template", "status", "reason"],
            set_={"count": DailyCount.count + upsert.excluded.count},
        ),
        [
            {
                "day": str(day),
                "category": category,
                "template": template,
                "status": status,
                "reason": reason_key,
                "count": int(count),
            }
            for day, category, template, status, reason_key, count in grouped
        ],
    )
    return sum(int(row[-1]) for row in grouped)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants a day starts and ends (exclusive)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def hour_start(moment: datetime) -> datetime:
    """The start of the UTC hour ``moment`` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def is_finished(
    session: Session, start: datetime, now: datetime, settle: timedelta = COUNT_AFTER
) -> bool:
    """Whether no row dated in the hour from ``start`` can change or appear any more (see the
    module's docstring), the hour having ended ``settle`` (:func:`settle_time`) before ``now``."""
    end = start + HOUR
    if now < end + settle:
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


def count_hour(session: Session, start: datetime) -> int:
    """Add a finished hour's rows to their day's ``daily_counts`` and record the hour as
    counted; how many rows. The caller checked :func:`is_finished` in the same transaction.
    Raises ``IntegrityError`` (at flush) if another transaction counted the hour first: the
    caller rolls back, so the hour is counted once."""
    # The hour is not counted: if another run counts it meanwhile, its key's insert below
    # fails and this transaction adds nothing.
    counted = roll_up(
        session,
        and_(Notification.created_at >= start, Notification.created_at < start + HOUR),
        skip_counted=False,
    )
    session.add(CountedHour(hour=hour_key(start)))
    session.flush()
    return counted


def hours_to_count(
    session: Session, now: datetime, oldest: datetime, settle: timedelta = COUNT_AFTER
) -> Iterator[datetime]:
    """The starts of the hours that ended ``settle`` before ``now``, back to the one ``oldest``
    falls in, not counted yet; newest first."""
    first = hour_start(oldest)
    counted = set(
        session.scalars(select(CountedHour.hour).where(CountedHour.hour >= hour_key(first)))
    )
    start = hour_start(now - settle) - HOUR
    while start >= first:
        if hour_key(start) not in counted:
            yield start
        start -= HOUR


def count_finished_hours(
    sessions: SessionFactory,
    *,
    log_days: int,
    now: datetime | None = None,
    budget_seconds: float = 60.0,
    settle: timedelta = COUNT_AFTER,
) -> list[datetime]:
    """Count each hour of the log retention window finished ``settle`` after its end
    (:func:`settle_time`) and not counted yet, newest first, one short transaction each, until
    ``budget_seconds`` have passed (a later run goes on); returns the starts of the hours
    counted. Hours within :data:`RETENTION_MARGIN` of the retention cutoff are left to
    retention. Safe to run twice at once: an hour is counted by one, and both add to a day's
    counts in the database."""
    now = now or utcnow()
    oldest = now - timedelta(days=log_days) + RETENTION_MARGIN
    deadline = time.monotonic() + budget_seconds
    with sessions.begin() as session:
        candidates = list(hours_to_count(session, now, oldest, settle))
    done: list[datetime] = []
    for start in candidates:
        if time.monotonic() > deadline:
            break
        try:
            with sessions.begin() as session:
                if not is_finished(session, start, now, settle):
                    continue
                rows = count_hour(session, start)
        except IntegrityError:
            continue  # another run counted it
        log.debug("daily counts: counted the hour %s (%d notifications)", hour_key(start), rows)
        done.append(start)
    return done
