"""Migrations create the schema the models describe, on an empty PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

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
            context = MigrationContext.configure(connection, opts={"compare_type": True})
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
