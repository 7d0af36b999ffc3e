"""Housekeeping on a real database: the sweeper drains a backlog in bounded runs and never takes
back a live attempt; retention keeps quiet when it had nothing to do."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.delivery.sweeper import republish_stuck
from notify.migrate import upgrade
from notify.models import Notification, NotificationStatus, Recipient
from notify.models.base import utcnow


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    url = f"sqlite:///{tmp_path / 'sweep.sqlite'}"
    upgrade(url)
    return Settings(database_url=url, **overrides)  # type: ignore[arg-type]


def _rows(settings: Settings, count: int, status: NotificationStatus, age: timedelta) -> None:
    engine = open_database(settings)
    then = utcnow() - age
    with make_session_factory(engine).begin() as session:
        recipient_id = session.execute(
            insert(Recipient)
            .values(public_id="p", user_id="u", email="u@example.com", created_at=then,
                    updated_at=then)
            .returning(Recipient.id)
        ).scalar_one()  # fmt: skip
        session.execute(
            insert(Notification),
            [
                {
                    "id": f"{status.value}-{number}",
                    "recipient_id": recipient_id,
                    "template": "security_alert",
                    "category": "security",
                    "data": {},
                    "status": status,
                    "attempts": 1 if status is NotificationStatus.SENDING else 0,
                    "next_attempt_at": then,
                    "claimed_at": then if status is NotificationStatus.SENDING else None,
                    "created_at": then,
                    "updated_at": then,
                }
                for number in range(count)
            ],
        )
    engine.dispose()


def test_a_backlog_drains_in_runs_of_at_most_the_configured_size(tmp_path: Path) -> None:
    settings = _settings(tmp_path, sweep_max_per_run=700)
    _rows(settings, 1600, NotificationStatus.QUEUED, timedelta(minutes=10))
    sessions = make_session_factory(open_database(settings))
    published: list[str] = []

    def publish(items: Sequence[tuple[str, str]]) -> int:
        published.extend(notification_id for notification_id, _ in items)
        return len(items)

    runs = [republish_stuck(sessions, settings, publish) for _ in range(4)]
    assert runs == [700, 700, 200, 0]
    assert len(set(published)) == 1600


def test_a_sending_row_is_taken_back_only_after_the_attempt_cannot_be_alive(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    assert settings.sweep_sending_after_seconds > settings.send_attempt_seconds
    young = timedelta(seconds=settings.send_attempt_seconds)  # may still be running
    _rows(settings, 3, NotificationStatus.SENDING, young)
    sessions = make_session_factory(open_database(settings))
    assert republish_stuck(sessions, settings, len) == 0
    with sessions.begin() as session:
        for row in session.scalars(select(Notification)):
            row.claimed_at = utcnow() - timedelta(seconds=settings.sweep_sending_after_seconds + 1)
    assert republish_stuck(sessions, settings, len) == 3
    with sessions() as session:
        statuses = set(session.scalars(select(Notification.status)))
    assert statuses == {NotificationStatus.QUEUED}


def test_a_run_stops_at_the_first_publish_the_broker_refuses(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _rows(settings, 10, NotificationStatus.QUEUED, timedelta(minutes=10))
    sessions = make_session_factory(open_database(settings))
    attempts: list[int] = []

    def broker_half_down(items: Sequence[tuple[str, str]]) -> int:
        attempts.append(len(items))
        return 4  # took the first group of four, then refused

    assert republish_stuck(sessions, settings, broker_half_down) == 4
    assert attempts == [10]  # one call for the page, not ten waits on a broker that is down
    with sessions() as session:
        statuses = Counter(session.scalars(select(Notification.status)))
    assert statuses == {NotificationStatus.QUEUED: 10}  # the rest wait for the next run


def test_retention_that_found_nothing_stays_out_of_the_info_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from notify.privacy.retention import apply_retention

    settings = _settings(tmp_path)
    sessions = make_session_factory(open_database(settings))
    with caplog.at_level(logging.INFO, logger="notify.privacy.retention"):
        report = apply_retention(sessions, content_days=30, log_days=395)
    assert (report.contents_removed, report.rows_deleted) == (0, 0)
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
    _rows(settings, 2, NotificationStatus.QUEUED, timedelta(days=400))
    with caplog.at_level(logging.INFO, logger="notify.privacy.retention"):
        apply_retention(sessions, content_days=30, log_days=395)
    assert any("deleted 2" in r.getMessage() for r in caplog.records)
