"""Engines and sessions. Callers own transactions: ``with sessions.begin() as session: ...``.

SQLite gets WAL, a busy timeout and foreign keys on every connection; PostgreSQL URLs are
pointed at the psycopg 3 driver. The two engines differ in a few statements; :func:`on_postgresql`
and :func:`insert_on_conflict` are the only places the rest of the code asks which engine it is
on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    create_engine,
    event,
    func,
    literal_column,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from notify import crypto
from notify.config import Settings

SessionFactory = sessionmaker[Session]


def normalise_database_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for ``url``; for a SQLite file, its folder is created first."""
    url = normalise_database_url(url)
    parsed = make_url(url)
    options.setdefault("hide_parameters", True)  # error messages and logs: no bound values
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    # Never prepare statements, so PostgreSQL plans each for its parameters. psycopg prepares
    # a statement on its sixth run by default, and PostgreSQL 15 then prefers a generic plan,
    # which cannot leave out the months of the partitioned notifications table: it locks and
    # opens every partition at each run. In bench.campaign (20,000) the campaign path cost
    # 1.24 ms of database CPU a message with prepared statements, 0.52 ms without (0.24 ms
    # before partitioning, in the same session). Client-side, so it holds behind PgBouncer.
    connect_args = dict(options.get("connect_args") or {})
    connect_args.setdefault("prepare_threshold", None)
    options["connect_args"] = connect_args
    options.setdefault("pool_pre_ping", True)
    # As many as the web process's worker threads (WEB_THREADS), so connections are reused,
    # never opened and closed per request; a Celery pool process uses one, and a second while
    # it sends a campaign batch (the lease heartbeat).
    options.setdefault("pool_size", 20)
    options.setdefault("max_overflow", 5)
    return create_engine(url, **options)


def make_session_factory(engine: Engine) -> SessionFactory:
    return sessionmaker(engine, expire_on_commit=False)


def open_database(settings: Settings, **options: Any) -> Engine:
    """The engine for this process, after installing its data keys (``notify.crypto``).

    New PostgreSQL connections give up after ``NOTIFY_DATABASE_CONNECT_TIMEOUT_SECONDS``, in
    the web process and the workers alike, so a database that does not answer is an error
    within that time rather than a hang.
    """
    crypto.install(settings.data_key_list)
    if settings.database_url.startswith("postgres"):
        options.setdefault(
            "connect_args", {"connect_timeout": settings.database_connect_timeout_seconds}
        )
    return make_engine(settings.database_url, **options)


def on_postgresql(session_or_factory: Session | SessionFactory | Connection) -> bool:
    """Whether the session (or the sessions a factory makes, or the connection) talks to
    PostgreSQL; else SQLite."""
    if isinstance(session_or_factory, Connection):
        return session_or_factory.dialect.name == "postgresql"
    if isinstance(session_or_factory, Session):
        bind: Any = session_or_factory.get_bind()
    else:
        bind = session_or_factory.kw.get("bind")
    return bind is not None and bind.dialect.name == "postgresql"


def insert_on_conflict(session: Session, model: Any) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` for ``model`` with ``ON CONFLICT`` support, in the session's dialect (both
    PostgreSQL and SQLite spell it the same way; SQLAlchemy keeps a class for each)."""
    dialect: Any = postgresql if on_postgresql(session) else sqlite
    statement: postgresql.Insert | sqlite.Insert = dialect.insert(model)
    return statement


_UTC_FORMATS = {
    "day": ("YYYY-MM-DD", 10),
    "hour": ("YYYY-MM-DD HH24", 13),
    "minute": ("YYYY-MM-DD HH24:MI", 16),
}


def utc_text(session: Session, column: Any, unit: str) -> Any:
    """A timestamp column cut to its UTC ``day`` (``YYYY-MM-DD``), ``hour`` (``YYYY-MM-DD HH``)
    or ``minute`` (``YYYY-MM-DD HH:MM``), as text that sorts and groups the same on either
    database (SQLite stores these columns as UTC ISO text)."""
    pattern, length = _UTC_FORMATS[unit]
    if on_postgresql(session):
        return func.to_char(func.timezone("UTC", column), pattern)
    return func.substr(column, 1, length)


DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for a transaction it rolled back to break a deadlock


def is_deadlock(error: DBAPIError) -> bool:
    """Whether PostgreSQL rolled this statement's transaction back to break a deadlock (the
    transaction may simply be made again)."""
    return getattr(error.orig, "sqlstate", None) == DEADLOCK


ANALYZE_AFTER_ROWS = 10_000
"""Rows written in one go after which :func:`refresh_statistics` runs."""


def refresh_statistics(sessions: SessionFactory, table: str) -> None:
    """``ANALYZE`` one table after a bulk write, as PostgreSQL's guide to populating a
    database advises (SQLite: nothing to do). Autovacuum would do it within a minute, or never
    where it is off; until then the planner takes a grown table for the handful of pages it
    had, and statements prepared meanwhile keep that plan. ``ANALYZE`` also makes every session
    plan them again."""
    with sessions.begin() as session:
        if on_postgresql(session):
            quoted = session.get_bind().dialect.identifier_preparer.quote(table)
            session.execute(text(f"ANALYZE {quoted}"))


def unindexed(column: Any) -> Any:
    """``column`` in an expression that no index matches (``column || ''``), for conditions
    beside a primary-key lookup. Without table statistics (a fresh campaign, autovacuum
    off), PostgreSQL intersected a 20-id claim with the whole ``(status, next_attempt_at)``
    index: 40 ms a claim at 770,000 queued rows, growing with the backlog. Written this
    way, the key lookup is the only way in on both engines."""
    return type_coerce(column, String()) + literal_column("''")
