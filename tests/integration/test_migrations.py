"""Migrations create the schema the models describe, on an empty PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from notify import partitions
from notify.db import make_engine
from notify.migrate import upgrade
from notify.models import Base
from tests.support.services import create_postgres_database

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    url, drop = create_postgres_database()
    try:
        yield url
    finally:
        drop()


def test_upgrade_on_an_empty_database_matches_the_models_exactly(empty_database: str) -> None:
    upgrade(empty_database)
    upgrade(empty_database)  # a second run is a no-op
    engine = make_engine(empty_database)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "include_name": partitions.include_name},
            )
            differences = compare_metadata(context, Base.metadata)
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert differences == []
    assert set(Base.metadata.tables) <= tables


def test_status_columns_refuse_values_outside_their_enum(empty_database: str) -> None:
    """The CHECK constraints of migration 0006: a status no enum member has is refused."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO suppressions (address_hash, reason, created_at) "
                    "VALUES ('a', 'complaint', CURRENT_TIMESTAMP)"
                )
            )
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO suppressions (address_hash, reason, created_at) "
                    "VALUES ('b', 'whatever', CURRENT_TIMESTAMP)"
                )
            )
        campaign = (
            "INSERT INTO campaigns (name, template, category, data, audience, status, "
            "planned_through, planning_done, batches_planned, created_at, updated_at) "
            "VALUES ('x', 't', 'c', '{}', '{}', :status, 0, false, 0, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
        with engine.begin() as connection:
            connection.execute(text(campaign), {"status": "draft"})
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text(campaign), {"status": "sent"})  # a notification's status
    finally:
        engine.dispose()


def test_upgrading_a_database_with_campaign_rows_keeps_every_row(empty_database: str) -> None:
    """Migration 0006 rebuilds tables on SQLite; no cascade may take campaign rows with it."""
    from sqlalchemy import text

    upgrade(empty_database, "0005")
    engine = make_engine(empty_database)
    now = "2026-11-28 09:00:00"
    rows = [
        *(
            "INSERT INTO recipients (id, public_id, user_id, email, email_hash, created_at, "
            f"updated_at) VALUES ({n}, 'p{n}', 'u{n}', 'x', 'h{n}', '{now}', '{now}')"
            for n in (1, 2)
        ),
        "INSERT INTO campaigns (id, name, template, category, data, audience, status, "
        "planned_through, planning_done, batches_planned, created_at, updated_at) VALUES "
        f"(1, 'c', 'product_update', 'product_updates', '{{}}', '{{}}', 'running', 1, true, 1, "
        f"'{now}', '{now}')",
        "INSERT INTO campaign_batches (id, campaign_id, batch_no, status, due_at, attempts, "
        f"updated_at) VALUES (1, 1, 1, 'running', '{now}', 1, '{now}')",
        *(
            "INSERT INTO notifications (id, recipient_id, template, category, data, "
            "campaign_id, batch_id, status, attempts, next_attempt_at, created_at, updated_at) "
            f"VALUES ('n{number}', {number + 1}, 'product_update', 'product_updates', 'x', 1, 1, "
            f"'{status}', 1, '{now}', '{now}', '{now}')"
            for number, status in enumerate(("sent", "queued"))
        ),
        f"INSERT INTO suppressions (address_hash, reason, created_at) VALUES "
        f"('h1', 'complaint', '{now}')",
    ]
    tables = ("recipients", "campaigns", "campaign_batches", "notifications", "suppressions")
    try:
        with engine.begin() as connection:
            for statement in rows:
                connection.execute(text(statement))
        upgrade(empty_database)
        with engine.connect() as connection:
            counts = {
                table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                for table in tables
            }
    finally:
        engine.dispose()
    assert counts == {
        "recipients": 2,
        "campaigns": 1,
        "campaign_batches": 1,
        "notifications": 2,
        "suppressions": 1,
    }


def test_partitioning_keeps_keys_decisions_and_puts_each_row_in_its_month(
    empty_database: str,
) -> None:
    """Migration 0019: idempotency keys move to their table, decisions learn their
    notification's time, and on PostgreSQL every row lands in its month's partition."""
    from sqlalchemy import text

    from notify.db import make_session_factory
    from notify.delivery import outbox

    upgrade(empty_database, "0018")
    engine = make_engine(empty_database)
    times = {"n-old": "2026-03-10 08:00:00+00:00", "n-new": "2026-11-28 09:00:00+00:00"}
    rows = [
        "INSERT INTO api_keys (id, name, secret_hash, scopes, created_at) "
        "VALUES (7, 'k', 'h', 'notifications:send', '2026-01-01 00:00:00+00:00')",
        "INSERT INTO recipients (id, public_id, user_id, email, email_hash, created_at, "
        "updated_at) VALUES (1, 'p1', 'u1', 'x', 'h1', '2026-01-01 00:00:00+00:00', "
        "'2026-01-01 00:00:00+00:00')",
        *(
            "INSERT INTO notifications (id, api_key_id, idempotency_key, request_hash, "
            "recipient_id, template, category, data, status, attempts, next_attempt_at, "
            f"created_at, updated_at) VALUES ('{key}', 7, 'key-{key}', 'hash-{key}', 1, "
            f"'security_alert', 'security', 'x', 'sent', 1, '{at}', '{at}', '{at}')"
            for key, at in times.items()
        ),
        *(
            "INSERT INTO notification_decisions (notification_id, decided_at, record) "
            f"VALUES ('{key}', '{at}', '{{}}')"
            for key, at in times.items()
        ),
    ]
    try:
        with engine.begin() as connection:
            for statement in rows:
                connection.execute(text(statement))
        upgrade(empty_database)
        with engine.connect() as connection:
            keys = connection.execute(
                text(
                    "SELECT idempotency_key, request_hash, notification_id "
                    "FROM idempotency_keys ORDER BY notification_id"
                )
            ).all()
            decided = connection.execute(
                text(
                    "SELECT count(*) FROM notification_decisions d JOIN notifications n "
                    "ON n.id = d.notification_id AND n.created_at = d.notification_created_at"
                )
            ).scalar()
            homes = (
                dict(
                    connection.execute(
                        text("SELECT id, tableoid::regclass::text FROM notifications")
                    ).all()
                )
                if connection.dialect.name == "postgresql"
                else None
            )
        with make_session_factory(engine)() as session:
            found = outbox.find_by_idempotency_key(session, 7, "key-n-old")
    finally:
        engine.dispose()
    assert [tuple(row) for row in keys] == [
        ("key-n-new", "hash-n-new", "n-new"),
        ("key-n-old", "hash-n-old", "n-old"),
    ]
    assert decided == 2
    assert found is not None and found.id == "n-old" and found.request_hash == "hash-n-old"
    if homes is not None:
        assert homes == {"n-old": "notifications_p2026_03", "n-new": "notifications_p2026_11"}
