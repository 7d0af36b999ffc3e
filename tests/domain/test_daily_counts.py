"""Finished hours counted once into the daily counts, and the stats reading them there: what is
counted, when an hour is not finished yet, and that nothing is counted twice (by a second run,
or by retention deleting the rows later)."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notify.models import (
    Campaign,
    CampaignStatus,
    CountedHour,
    DailyCount,
    Notification,
    NotificationStatus,
)
from notify.privacy import stats
from notify.privacy.daily_counts import (
    COUNT_AFTER,
    HOUR,
    RETENTION_MARGIN,
    count_finished_hours,
    count_hour,
    day_bounds,
    is_finished,
    roll_up,
    settle_time,
)
from tests.domain.people import accepted
from tests.support.services import wait_until, waiting_for_a_lock

DAY = date(2033, 3, 10)  # far from any row another test makes
NOON = day_bounds(DAY)[0] + timedelta(hours=12)
AFTER = NOON + HOUR + COUNT_AFTER + timedelta(minutes=1)  # NOON's hour is finished by then


def _dated(
    session: Session, user_id: str, day: date, status: NotificationStatus, minute: int = 30
) -> str:
    """A security alert accepted for ``user_id``, dated ``minute`` past noon of ``day``, ended
    as ``status``."""
    notification_id, _ = accepted(session, "security_alert", user_id)
    at = day_bounds(day)[0] + timedelta(hours=12, minutes=minute)
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(
            created_at=at,
            status=status,
            reason="bounced" if status is NotificationStatus.SUPPRESSED else None,
        )
        .execution_options(synchronize_session=False)
    )
    return notification_id


def _day_stats(session: Session, start: date, end: date) -> list[dict[str, Any]]:
    return [
        entry
        for entry in stats.daily(session, start, end)["days"]
        if entry["template"] == "security_alert"
    ]


def test_a_finished_hour_is_counted_once_and_then_read_from_the_counts(session: Session) -> None:
    sent = _dated(session, "counted-1", DAY, NotificationStatus.SENT)
    _dated(session, "counted-2", DAY, NotificationStatus.FAILED)
    _dated(session, "counted-3", DAY, NotificationStatus.SUPPRESSED)
    from_rows = _day_stats(session, DAY, DAY)
    assert from_rows == [
        {
            "day": DAY.isoformat(),
            "category": "security",
            "template": "security_alert",
            "sent": 1,
            "failed": 1,
            "cancelled": 0,
            "pending": 0,
            "suppressed": {"bounced": 1},
        }
    ]
    assert is_finished(session, NOON, AFTER)
    assert count_hour(session, NOON) == 3
    assert _day_stats(session, DAY, DAY) == from_rows
    # The stats read the counts now, not the rows: a row changed behind the service's back
    # (nothing in the service changes a finished row) leaves them as they were.
    session.execute(
        update(Notification)
        .where(Notification.id == sent)
        .values(status=NotificationStatus.FAILED)
        .execution_options(synchronize_session=False)
    )
    assert _day_stats(session, DAY, DAY) == from_rows
    # Retention counts the rows it deletes, except a counted hour's: they are in already.
    start, end = day_bounds(DAY)
    the_day = and_(Notification.created_at >= start, Notification.created_at < end)
    assert roll_up(session, the_day) == 0
    assert _day_stats(session, DAY, DAY) == from_rows


def test_an_hour_is_not_finished_while_a_row_may_still_change_or_appear(session: Session) -> None:
    queued = _dated(session, "open-1", DAY, NotificationStatus.QUEUED)
    assert not is_finished(session, NOON, AFTER)  # a row still queued
    session.execute(
        update(Notification)
        .where(Notification.id == queued)
        .values(status=NotificationStatus.SENDING)
        .execution_options(synchronize_session=False)
    )
    assert not is_finished(session, NOON, AFTER)  # a row handed to a worker
    session.execute(
        update(Notification)
        .where(Notification.id == queued)
        .values(status=NotificationStatus.SENT)
        .execution_options(synchronize_session=False)
    )
    assert is_finished(session, NOON, AFTER)
    assert not is_finished(session, NOON, AFTER - timedelta(minutes=2))  # ended too recently
    assert is_finished(session, NOON + HOUR, AFTER + HOUR)  # the next hour: nothing in it
    planned = NOON + timedelta(minutes=59)
    campaign = Campaign(
        name="still planning",
        template="product_update",
        category="product_updates",
        data={},
        audience={},
        status=CampaignStatus.RUNNING,
        start_at=planned,
        planned_at=planned,
    )
    session.add(campaign)
    session.flush()
    assert not is_finished(session, NOON, AFTER)  # its next page would be dated that hour
    for waiting in (CampaignStatus.PAUSED, CampaignStatus.NEEDS_ATTENTION):
        campaign.status = waiting  # planning goes on when it is resumed
        session.flush()
        assert not is_finished(session, NOON, AFTER), waiting
    campaign.status = CampaignStatus.RUNNING
    campaign.planning_done = True  # every page is in
    session.flush()
    assert is_finished(session, NOON, AFTER)
    campaign.planning_done = False
    campaign.status = CampaignStatus.CANCELLED
    session.flush()
    assert is_finished(session, NOON, AFTER)


def test_an_hour_is_counted_no_sooner_than_twice_the_task_time_limit_after_it_ends() -> None:
    assert settle_time(300) == COUNT_AFTER == timedelta(minutes=15)
    assert settle_time(1800) == timedelta(hours=1)


def test_the_stats_add_the_rows_of_uncounted_hours_to_the_counts_of_counted_ones(
    session: Session,
) -> None:
    days = [DAY + timedelta(days=offset) for offset in range(4)]
    for index, day in enumerate(days):
        for person in range(index + 1):  # 1, 2, 3, 4 sent on the four days
            _dated(session, f"mixed-{index}-{person}", day, NotificationStatus.SENT)
        # and one more each day in the hour after, counted or not with the rest of its day
        _dated(session, f"mixed-{index}-later", day, NotificationStatus.SENT, minute=90)
    from_rows = _day_stats(session, days[0], days[-1])
    assert [entry["sent"] for entry in from_rows] == [2, 3, 4, 5]
    count_hour(session, day_bounds(days[1])[0] + timedelta(hours=12))  # both hours of a day
    count_hour(session, day_bounds(days[1])[0] + timedelta(hours=13))
    count_hour(session, day_bounds(days[2])[0] + timedelta(hours=13))  # one hour of another
    count_hour(session, day_bounds(days[3])[0] + timedelta(hours=12))
    assert _day_stats(session, days[0], days[-1]) == from_rows
    _dated(session, "mixed-late", days[2], NotificationStatus.SENT)  # an uncounted hour grows
    assert [entry["sent"] for entry in _day_stats(session, days[0], days[-1])] == [2, 3, 5, 5]


def test_the_periodic_run_counts_finished_hours_newest_first_and_each_once(
    file_sessions: Any,
) -> None:
    now = NOON + timedelta(hours=5, minutes=20)  # 17:20: the hour from 16:00 ended 20 min ago
    log_days = 1
    oldest = now - timedelta(days=log_days) + RETENTION_MARGIN  # after now: nothing is counted
    assert count_finished_hours(file_sessions, log_days=log_days, now=now) == []
    log_days = 3
    oldest = now - timedelta(days=log_days) + RETENTION_MARGIN  # 17:20 the day before
    with file_sessions.begin() as session:
        _dated(session, "run-1", DAY, NotificationStatus.SENT)  # 12:30
        _dated(session, "run-2", DAY, NotificationStatus.QUEUED, minute=120)  # 14:00
        _dated(session, "run-3", DAY - timedelta(days=1), NotificationStatus.SENT, minute=-30)
    counted = count_finished_hours(file_sessions, log_days=log_days, now=now)
    # Newest first, from 16:00 back to oldest's hour; the hour with a queued row waits; 17:00
    # has not ended, and 11:00 the day before is left to retention.
    expected = [NOON + 4 * HOUR - back * HOUR for back in range(24)]
    expected.remove(NOON + 2 * HOUR)
    assert expected[-1] == oldest.replace(minute=0)
    assert counted == expected
    assert count_finished_hours(file_sessions, log_days=log_days, now=now) == []
    with file_sessions.begin() as session:
        session.execute(
            update(Notification)
            .where(Notification.status == NotificationStatus.QUEUED)
            .values(status=NotificationStatus.SENT)
        )
    assert count_finished_hours(file_sessions, log_days=log_days, now=now) == [NOON + 2 * HOUR]
    with file_sessions() as session:
        assert session.scalar(select(func.sum(DailyCount.count))) == 2  # run-3 left uncounted
        assert session.scalar(select(func.count()).select_from(CountedHour)) == 24


def test_an_hour_two_runs_count_at_once_is_counted_by_one(file_sessions: Any) -> None:
    with file_sessions.begin() as session:
        _dated(session, "twice-1", DAY, NotificationStatus.SENT)
    with file_sessions.begin() as session:
        assert count_hour(session, NOON) == 1
    with pytest.raises(IntegrityError), file_sessions.begin() as session:
        count_hour(session, NOON)  # the other run's commit came first: this one rolls back whole
    with file_sessions() as session:
        assert session.scalar(select(func.sum(DailyCount.count))) == 1


def test_two_hours_of_one_day_counted_at_once_both_count(own_postgres: Any) -> None:
    """Two runs add to the same day's counts at the same time (PostgreSQL, read committed):
    the second waits for the first and adds to its total, it does not overwrite it."""
    postgres_sessions = own_postgres
    with postgres_sessions.begin() as session:
        _dated(session, "both-0", DAY, NotificationStatus.SENT, minute=-30)  # 11:30
        _dated(session, "both-1", DAY, NotificationStatus.SENT)  # 12:30
        _dated(session, "both-2", DAY, NotificationStatus.SENT, minute=90)  # 13:30
    with postgres_sessions.begin() as session:
        assert count_hour(session, NOON - HOUR) == 1  # the day's counts exist: 1 sent
    first = postgres_sessions()
    first.begin()
    assert count_hour(first, NOON) == 1  # not committed yet
    second_done: list[int] = []

    def second() -> None:
        with postgres_sessions.begin() as session:
            second_done.append(count_hour(session, NOON + HOUR))

    thread = threading.Thread(target=second)
    thread.start()
    wait_until(
        lambda: waiting_for_a_lock(postgres_sessions),
        10,
        "the second run to wait for the first's row",
    )
    first.commit()
    first.close()
    thread.join(10)
    assert second_done == [1]
    with postgres_sessions() as session:
        assert session.scalar(select(DailyCount.count)) == 3  # one row: the day's sent
        assert session.scalar(select(func.count()).select_from(CountedHour)) == 3
