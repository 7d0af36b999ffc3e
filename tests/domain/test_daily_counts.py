"""Finished days counted once into the daily counts, and the stats reading them there: what is
counted, when a day is not finished yet, and that nothing is counted twice (by a second run, or
by retention deleting the rows later)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.migrate import upgrade
from notify.models import (
    Campaign,
    CampaignStatus,
    CountedDay,
    DailyCount,
    Notification,
    NotificationStatus,
)
from notify.privacy import stats
from notify.privacy.daily_counts import (
    COUNT_AFTER,
    RETENTION_MARGIN_DAYS,
    count_day,
    count_finished_days,
    day_bounds,
    is_finished,
    roll_up,
)
from tests.domain.people import accepted

DAY = date(2033, 3, 10)  # far from any row another test makes
AFTER = day_bounds(DAY)[1] + COUNT_AFTER + timedelta(minutes=1)


def _dated(session: Session, user_id: str, day: date, status: NotificationStatus) -> str:
    """A security alert accepted for ``user_id``, dated noon of ``day``, ended as ``status``."""
    notification_id, _ = accepted(session, "security_alert", user_id)
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(
            created_at=datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12),
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


def test_a_finished_day_is_counted_once_and_then_read_from_the_counts(session: Session) -> None:
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
    assert is_finished(session, DAY, AFTER)
    assert count_day(session, DAY) == 3
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
    # Retention counts the rows it deletes, except a counted day's: they are in already.
    start, end = day_bounds(DAY)
    the_day = and_(Notification.created_at >= start, Notification.created_at < end)
    assert roll_up(session, the_day) == 0
    assert _day_stats(session, DAY, DAY) == from_rows


def test_a_day_is_not_finished_while_a_row_may_still_change_or_appear(session: Session) -> None:
    queued = _dated(session, "open-1", DAY, NotificationStatus.QUEUED)
    assert not is_finished(session, DAY, AFTER)  # a row still queued
    session.execute(
        update(Notification)
        .where(Notification.id == queued)
        .values(status=NotificationStatus.SENDING)
        .execution_options(synchronize_session=False)
    )
    assert not is_finished(session, DAY, AFTER)  # a row handed to a worker
    session.execute(
        update(Notification)
        .where(Notification.id == queued)
        .values(status=NotificationStatus.SENT)
        .execution_options(synchronize_session=False)
    )
    assert is_finished(session, DAY, AFTER)
    assert not is_finished(session, DAY, AFTER - timedelta(minutes=2))  # ended too recently
    planned = day_bounds(DAY)[0] + timedelta(hours=23)
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
    assert not is_finished(session, DAY, AFTER)  # its next page would be dated that day
    campaign.status = CampaignStatus.CANCELLED
    session.flush()
    assert is_finished(session, DAY, AFTER)


def test_the_stats_add_the_rows_of_uncounted_days_to_the_counts_of_counted_ones(
    session: Session,
) -> None:
    days = [DAY + timedelta(days=offset) for offset in range(4)]
    for index, day in enumerate(days):
        for person in range(index + 1):  # 1, 2, 3, 4 sent on the four days
            _dated(session, f"mixed-{index}-{person}", day, NotificationStatus.SENT)
    from_rows = _day_stats(session, days[0], days[-1])
    assert [entry["sent"] for entry in from_rows] == [1, 2, 3, 4]
    count_day(session, days[1])  # counted, uncounted on both sides of it
    count_day(session, days[3])
    assert _day_stats(session, days[0], days[-1]) == from_rows
    _dated(session, "mixed-late", days[2], NotificationStatus.SENT)  # an uncounted day grows
    assert [entry["sent"] for entry in _day_stats(session, days[0], days[-1])] == [1, 2, 4, 4]


@pytest.fixture
def file_sessions(tmp_path: Path) -> Iterator[Any]:
    """Sessions that commit, on a SQLite database of the test's own."""
    url = f"sqlite:///{tmp_path / 'counts.sqlite'}"
    upgrade(url)
    engine = open_database(Settings(database_url=url))
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def test_the_periodic_run_counts_finished_days_newest_first_and_each_once(
    file_sessions: Any,
) -> None:
    now = AFTER + timedelta(days=3)  # DAY and the three days after it have ended
    log_days = 10
    oldest = (now - timedelta(days=log_days)).date() + timedelta(days=RETENTION_MARGIN_DAYS)
    with file_sessions.begin() as session:
        _dated(session, "run-1", DAY, NotificationStatus.SENT)
        _dated(session, "run-2", DAY + timedelta(days=1), NotificationStatus.QUEUED)
        _dated(session, "run-3", oldest - timedelta(days=1), NotificationStatus.SENT)
    counted = count_finished_days(file_sessions, log_days=log_days, now=now)
    # Newest first; the day with a queued row waits; the day by retention's cutoff is left to it.
    expected = [now.date() - timedelta(days=back) for back in range(1, 9)]
    expected.remove(DAY + timedelta(days=1))
    assert counted == expected
    assert oldest - timedelta(days=1) not in counted
    assert count_finished_days(file_sessions, log_days=log_days, now=now) == []
    with file_sessions.begin() as session:
        session.execute(
            update(Notification)
            .where(Notification.status == NotificationStatus.QUEUED)
            .values(status=NotificationStatus.SENT)
        )
    assert count_finished_days(file_sessions, log_days=log_days, now=now) == [
        DAY + timedelta(days=1)
    ]
    with file_sessions() as session:
        assert session.scalar(select(func.sum(DailyCount.count))) == 2
        assert session.scalar(select(func.count()).select_from(CountedDay)) == 8


def test_a_day_two_runs_count_at_once_is_counted_by_one(file_sessions: Any) -> None:
    with file_sessions.begin() as session:
        _dated(session, "twice-1", DAY, NotificationStatus.SENT)
    with file_sessions.begin() as session:
        assert count_day(session, DAY) == 1
    with pytest.raises(IntegrityError), file_sessions.begin() as session:
        count_day(session, DAY)  # the other run's commit came first: this one rolls back whole
    with file_sessions() as session:
        assert session.scalar(select(func.sum(DailyCount.count))) == 1
