"""Monthly partitions on PostgreSQL: rows land in their month, months are made ahead, and
retention drops whole months (counting them first) while the default partition's rows go one
by one. Each test has a database of its own: dropping months would disturb the shared one."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from notify import partitions
from notify.campaigns.planning import plan_next_page
from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.migrate import upgrade
from notify.models import (
    ApiKey,
    Campaign,
    CampaignStatus,
    DailyCount,
    IdempotencyKey,
    Notification,
    NotificationDecision,
    NotificationStatus,
)
from notify.models.base import utcnow
from notify.models.notifications import created_at_of, new_notification_id, with_ids
from notify.privacy.retention import apply_retention
from tests.domain.people import accepted, person

NOW = datetime(2031, 6, 15, 12, 0, tzinfo=UTC)  # far from the months the migration makes


@pytest.fixture
def sessions(own_postgres: Any) -> Any:
    return own_postgres


def _notification(session: Session, recipient_id: int, created_at: datetime, key: str) -> str:
    """A sent notification made at ``created_at``, with its decision and an idempotency key."""
    api_key = session.scalar(select(ApiKey.id).limit(1))
    if api_key is None:
        made = ApiKey(name="partitions", secret_hash=f"hash-{key}", scopes="notifications:send")
        session.add(made)
        session.flush()
        api_key = made.id
    row = Notification(
        recipient_id=recipient_id,
        template="product_update",
        category="product_updates",
        data={},
        status=NotificationStatus.SENT,
        created_at=created_at,
        next_attempt_at=created_at,
        api_key_id=api_key,
    )
    session.add(row)
    session.flush()
    session.add(
        NotificationDecision(
            notification_id=row.id,
            notification_created_at=created_at,
            decided_at=created_at,
            record={"sends": True},
        )
    )
    session.add(
        IdempotencyKey(
            api_key_id=api_key,
            idempotency_key=key,
            request_hash="0" * 64,
            notification_id=row.id,
            notification_created_at=created_at,
        )
    )
    return row.id


def _partition_of(session: Session, notification_id: str) -> str:
    return str(
        session.scalar(
            text("SELECT tableoid::regclass::text FROM notifications WHERE id = :id"),
            {"id": notification_id},
        )
    )


def _exists(session: Session, name: str) -> bool:
    return bool(session.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}))


def test_retention_drops_whole_months_and_deletes_the_default_partitions_rows_singly(
    sessions: Any,
) -> None:
    old_month = NOW - timedelta(days=460)  # its whole month is past 395 days
    straddling = NOW - timedelta(days=396)  # past 395 days, its month is not
    uncovered = NOW - timedelta(days=520)  # no month made for it: the default partition
    with sessions.begin() as session:
        partitions.ensure_months(
            session.connection(), (NOW - timedelta(days=480)).date(), NOW.date()
        )
        recipient_id = person(session, "partitioned")
        ids = {
            name: _notification(session, recipient_id, at, name)
            for name, at in {
                "old": old_month,
                "straddling": straddling,
                "uncovered": uncovered,
                "recent": NOW - timedelta(days=2),
            }.items()
        }
    with sessions() as session:
        assert _partition_of(session, ids["old"]) == f"notifications_p{old_month:%Y_%m}"
        assert _partition_of(session, ids["uncovered"]) == "notifications_default"
        decision_in = session.scalar(
            text(
                "SELECT tableoid::regclass::text FROM notification_decisions "
                "WHERE notification_id = :id"
            ),
            {"id": ids["old"]},
        )
        assert decision_in == f"notification_decisions_p{old_month:%Y_%m}"

    report = apply_retention(sessions, content_days=30, log_days=395, now=NOW)

    assert report.rows_deleted == 2
    with sessions() as session:
        for table in ("notifications", "notification_decisions"):
            assert not _exists(session, f"{table}_p{old_month:%Y_%m}")
            assert _exists(session, f"{table}_p{straddling:%Y_%m}")
        left = set(session.scalars(select(Notification.id)))
        assert left == {ids["straddling"], ids["recent"]}
        assert set(session.scalars(select(NotificationDecision.notification_id))) == left
        assert set(session.scalars(select(IdempotencyKey.notification_id))) == left
        counted = {
            row.day: row.count
            for row in session.scalars(select(DailyCount).where(DailyCount.status == "sent"))
        }
    assert counted == {f"{old_month:%Y-%m-%d}": 1, f"{uncovered:%Y-%m-%d}": 1}


def test_a_month_in_use_is_dropped_by_the_next_run(
    sessions: Any, caplog: pytest.LogCaptureFixture
) -> None:
    old_month = NOW - timedelta(days=460)
    with sessions.begin() as session:
        partitions.ensure_months(session.connection(), old_month.date(), old_month.date())
        _notification(session, person(session, "busy"), old_month, "busy")
    reader = sessions()
    reader.execute(select(func.count()).select_from(Notification))  # holds a lock until it ends
    try:
        with caplog.at_level(logging.WARNING, logger="notify.privacy.retention"):
            first = apply_retention(
                sessions, content_days=30, log_days=395, now=NOW, lock_timeout="200ms"
            )
    finally:
        reader.close()
    assert first.rows_deleted == 0
    assert any("in use" in record.getMessage() for record in caplog.records)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 1
        assert session.scalar(select(func.count()).select_from(DailyCount)) == 0  # rolled back
    second = apply_retention(sessions, content_days=30, log_days=395, now=NOW, lock_timeout="200ms")
    assert second.rows_deleted == 1


def test_months_are_made_ahead_and_one_the_default_holds_rows_of_is_left_to_it(
    sessions: Any, caplog: pytest.LogCaptureFixture
) -> None:
    later = NOW + timedelta(days=400)
    with sessions.begin() as session:
        stray = _notification(session, person(session, "ahead"), later, "ahead")
    with sessions.begin() as session, caplog.at_level(logging.WARNING, logger="notify.partitions"):
        created = partitions.create_ahead(session.connection(), later - timedelta(days=31))
    month = partitions.month_of(later - timedelta(days=31))
    wanted = set()
    for _ in range(partitions.MONTHS_AHEAD + 1):  # the current month and those ahead
        wanted.add(f"notifications_p{month:%Y_%m}")
        month = partitions.next_month(month)
    held = f"notifications_p{later:%Y_%m}"
    assert held in wanted
    assert {name for name in created if name.startswith("notifications_p")} == wanted - {held}
    assert any(f"{later:%Y-%m}" in record.getMessage() for record in caplog.records)
    with sessions() as session:
        assert _partition_of(session, stray) == "notifications_default"
        assert not _exists(session, held)


def test_a_month_a_writer_holds_is_left_to_the_next_run_without_an_error(
    sessions: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer's transaction (a person written, then a notification, then its decision)
    holding the tables: the detach waits at most the lock timeout, gives up, and nothing is
    counted."""
    old_month = NOW - timedelta(days=460)
    with sessions.begin() as session:
        partitions.ensure_months(session.connection(), old_month.date(), NOW.date())
        recipient_id = person(session, "writer")
        _notification(session, recipient_id, old_month, "writer-old")
        recent = _notification(session, recipient_id, NOW - timedelta(days=1), "writer-new")
    writer = sessions()
    writer.execute(
        text("UPDATE recipients SET updated_at = now() WHERE id = :id"), {"id": recipient_id}
    )
    writer.execute(
        text("UPDATE notifications SET attempts = attempts + 1 WHERE id = :id"), {"id": recent}
    )
    writer.execute(
        text("UPDATE notification_decisions SET decided_at = now() WHERE notification_id = :id"),
        {"id": recent},
    )
    try:
        with caplog.at_level(logging.WARNING, logger="notify.privacy.retention"):
            report = apply_retention(
                sessions, content_days=30, log_days=395, now=NOW, lock_timeout="200ms"
            )
    finally:
        writer.rollback()
        writer.close()
    assert report.rows_deleted == 0
    assert any("in use" in record.getMessage() for record in caplog.records)
    with sessions() as session:
        assert _exists(session, f"notifications_p{old_month:%Y_%m}")
        assert partitions.detached_months(session.connection()) == []


def test_a_month_detached_by_a_run_that_stopped_is_counted_once_and_dropped_by_the_next(
    sessions: Any,
) -> None:
    old_month = NOW - timedelta(days=460)
    with sessions.begin() as session:
        partitions.ensure_months(session.connection(), old_month.date(), NOW.date())
        _notification(session, person(session, "stopped"), old_month, "stopped")
    month = partitions.month_of(old_month)
    with sessions.begin() as session:  # the first step of a run that then stopped
        partitions.detach_month(session.connection(), month)
    with sessions() as session:
        assert partitions.detached_months(session.connection()) == [month]
        assert session.scalar(select(func.count()).select_from(Notification)) == 0
    with sessions.begin() as other:  # another run counting it meanwhile: this one skips it
        assert partitions.take_detached(other.connection(), month)
        skipped = apply_retention(sessions, content_days=30, log_days=395, now=NOW)
    assert skipped.rows_deleted == 0
    report = apply_retention(sessions, content_days=30, log_days=395, now=NOW)
    assert report.rows_deleted == 1
    again = apply_retention(sessions, content_days=30, log_days=395, now=NOW)
    assert again.rows_deleted == 0
    with sessions() as session:
        assert partitions.detached_months(session.connection()) == []
        assert not _exists(session, f"notifications_p{old_month:%Y_%m}")
        assert session.scalar(select(func.sum(DailyCount.count))) == 1
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_on_sqlite_rows_go_singly_with_their_keys_and_decisions(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'retention.sqlite'}"
    upgrade(url)
    engine = open_database(Settings(database_url=url))
    sqlite_sessions = make_session_factory(engine)
    try:
        with sqlite_sessions.begin() as session:
            recipient_id = person(session, "on-sqlite")
            old = _notification(session, recipient_id, NOW - timedelta(days=396), "sqlite-old")
            kept = _notification(session, recipient_id, NOW - timedelta(days=394), "sqlite-new")
        report = apply_retention(sqlite_sessions, content_days=30, log_days=395, now=NOW)
        with sqlite_sessions() as session:
            left = set(session.scalars(select(Notification.id)))
            keys = set(session.scalars(select(IdempotencyKey.notification_id)))
            decided = set(session.scalars(select(NotificationDecision.notification_id)))
    finally:
        engine.dispose()
    assert report.rows_deleted == 1
    assert old not in left and left == keys == decided == {kept}


def test_statements_by_the_ids_the_service_makes_read_only_those_months(sessions: Any) -> None:
    """An id made by the service carries its time, so a lookup by it reads one partition; an id
    made any other way is still found, by reading every partition."""
    with sessions.begin() as session:
        partitions.ensure_months(session.connection(), NOW.date(), NOW.date())
        made, _ = accepted(session, "security_alert", "pruned")  # this month's, by the service
        other = _notification(session, person(session, "unpruned"), NOW, "unpruned")
    with sessions() as session:
        month = partitions.partition_name("notifications", partitions.month_of(utcnow()))

        def relations(notification_id: str) -> set[str]:
            """The tables the plan of a lookup by ``notification_id`` reads."""
            statement = select(Notification.id).where(with_ids([notification_id]))
            compiled = statement.compile(
                dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
            )
            (plan,) = (
                session.connection()
                .exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled.string}", compiled.params)
                .one()
            )
            found: set[str] = set()
            nodes = [plan[0]["Plan"]]
            while nodes:
                node = nodes.pop()
                if "Relation Name" in node:
                    found.add(node["Relation Name"])
                nodes.extend(node.get("Plans", []))
            return found

        assert session.scalar(select(Notification.id).where(with_ids([made]))) == made
        assert session.scalar(select(Notification.id).where(with_ids([other]))) == other
        pruned, unpruned = relations(made), relations(other)
    assert pruned == {month}
    assert month in unpruned and len(unpruned) > 1


def test_the_ids_the_service_makes_carry_their_rows_created_at(sessions: Any) -> None:
    """A submitted notification's id carries its created_at, and a campaign's rows their
    campaign's planned_at, to the millisecond: what the month bounds of a lookup rely on."""
    with sessions.begin() as session:
        made, _ = accepted(session, "security_alert", "carried")
        person(session, "carried-campaign")
        campaign = Campaign(
            name="carried",
            template="product_update",
            category="product_updates",
            data={},
            audience={},
            status=CampaignStatus.RUNNING,
            start_at=utcnow(),
        )
        session.add(campaign)
        session.flush()
        planned = plan_next_page(
            session,
            campaign.id,
            page_size=50,
            defaults=frozenset({"product_updates"}),
            default_timezone="UTC",
            now=utcnow(),
        )
        assert planned is not None
        rows = session.execute(
            select(Notification.id, Notification.created_at).where(
                (Notification.id == made) | (Notification.campaign_id == campaign.id)
            )
        ).all()
    assert len(rows) >= 2
    for notification_id, created_at in rows:
        assert created_at_of(notification_id) == created_at.replace(
            microsecond=created_at.microsecond // 1000 * 1000
        )


def test_connections_never_prepare_statements(sessions: Any) -> None:
    """Prepared statements would get PostgreSQL 15's generic plans, which open every month."""
    with sessions() as session:
        for _ in range(10):
            session.execute(select(Notification.id).where(with_ids([new_notification_id()])))
        prepared = session.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
    assert prepared == 0
