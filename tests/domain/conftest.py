"""The middle tier: domain functions against real PostgreSQL and SQLite, without a worker.

Every test gets a session on one connection whose outer transaction is rolled back afterwards,
so tests are isolated and leave nothing behind; data functions never commit, which is what
makes this work. Tests that take ``session`` run once per engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.db import SessionFactory, make_session_factory, open_database
from notify.migrate import upgrade
from tests.support.services import create_postgres_database
from tests.support.stack import migrated_postgres_database

ENGINES = ("postgresql", "sqlite")


@pytest.fixture(scope="session")
def domain_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Engine]]:
    """Databases of this tier's own, not the integration stack's: a test here may count every
    row of a table, whichever tests ran before it in the same process."""
    sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('domain') / 'domain.sqlite'}"
    upgrade(sqlite_url)
    with migrated_postgres_database() as postgres_url:
        engines = {
            "postgresql": open_database(Settings(database_url=postgres_url)),
            "sqlite": open_database(Settings(database_url=sqlite_url)),
        }
        try:
            yield engines
        finally:
            for engine in engines.values():
                engine.dispose()


@pytest.fixture(params=ENGINES)
def session(request: pytest.FixtureRequest, domain_engines: dict[str, Engine]) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    connection = domain_engines[request.param].connect()
    outer = connection.begin()
    with Session(bind=connection, expire_on_commit=False) as in_test:
        yield in_test
    outer.rollback()
    connection.close()


@contextmanager
def _committing_sessions(url: str) -> Iterator[SessionFactory]:
    """Sessions on the database at ``url``, migrated first; its engine is closed afterwards."""
    upgrade(url)
    engine = open_database(Settings(database_url=url))
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def own_postgres() -> Iterator[SessionFactory]:
    """Sessions that commit, on a migrated PostgreSQL database of the test's own, dropped
    afterwards: for tests of what other transactions see, or of catalog changes."""
    url, drop = create_postgres_database()
    try:
        with _committing_sessions(url) as sessions:
            yield sessions
    finally:
        drop()


@pytest.fixture
def file_sessions(tmp_path: Path) -> Iterator[Any]:
    """Sessions that commit, on a SQLite database of the test's own."""
    with _committing_sessions(f"sqlite:///{tmp_path / 'own.sqlite'}") as sessions:
        yield sessions


@pytest.fixture(params=ENGINES)
def own_sessions(request: pytest.FixtureRequest) -> Any:
    """:func:`own_postgres` or :func:`file_sessions`: sessions that commit, once per engine."""
    fixture = "own_postgres" if request.param == "postgresql" else "file_sessions"
    return request.getfixturevalue(fixture)
