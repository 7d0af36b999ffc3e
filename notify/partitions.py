"""Monthly partitions of the notifications table on PostgreSQL (SQLite keeps one table).

``notifications`` is partitioned by range of ``created_at``, one partition per calendar month
(UTC) named ``notifications_pYYYY_MM``, and ``notification_decisions`` the same way by its
``notification_created_at``, so a month of both is dropped together. A default partition of
each takes any row no month covers, so an insert never fails for want of a partition.

Guarantees:

* :func:`create_ahead` (a periodic task, hourly) keeps the current month and
  :data:`MONTHS_AHEAD` more created, so rows normally land in their month, never the default.
* A month is created only while the default partition holds none of its rows; otherwise it is
  left to the default (logged), whose rows retention deletes one by one.
* A month leaves in two steps. :func:`detach_month` takes it out of both tables in one short
  transaction of catalog changes, taking its locks in the order writers take them, and
  waiting at most :data:`LOCK_TIMEOUT` for each (statements on a table queue behind that wait,
  so it is short; a month still in use is left to the next run).
  Its rows are then no longer the service's: retention counts them and drops the detached
  tables together (:func:`take_detached` keeps two runs from counting a month twice), and a
  run that stopped between the steps is finished by the next (:func:`detached_months`).

Functions take a SQLAlchemy ``Connection`` (a session's, or a migration's) and never commit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import sqlalchemy
from sqlalchemy import Connection, TableClause, text

from notify.db import on_postgresql

log = logging.getLogger(__name__)

PARTITIONED: tuple[tuple[str, str], ...] = (
    ("notifications", "created_at"),
    ("notification_decisions", "notification_created_at"),
)
"""Each partitioned table and its partition key column; the first is the one retention reads."""

MONTHS_AHEAD = 3
"""Months past the current one that :func:`create_ahead` keeps created."""


def is_partitioned(connection: Connection) -> bool:
    """Whether ``notifications`` is a partitioned table (PostgreSQL after migration 0019)."""
    if not on_postgresql(connection):
        return False
    kind = connection.scalar(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"),
        {"name": "notifications"},
    )
    return bool(kind == "p")


def is_partition(name: str | None) -> bool:
    """Whether ``name`` is a partition's table name (made here, not by the models)."""
    return name is not None and any(
        name == default_name(table) or _month_of_name(table, name) is not None
        for table, _column in PARTITIONED
    )


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Alembic's ``include_name`` hook: leave partitions out when the database is compared
    with the models, as the models describe only the partitioned tables."""
    return not (type_ == "table" and is_partition(name))


def month_of(moment: datetime | date) -> date:
    """The first day of the month ``moment`` is in (a datetime is read in UTC)."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return date(moment.year, moment.month, 1)


def next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def months(first: date, last: date) -> Iterator[date]:
    """Every month from ``first``'s to ``last``'s, both included."""
    month, end = month_of(first), month_of(last)
    while month <= end:
        yield month
        month = next_month(month)


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month:%Y_%m}"


def default_name(table: str) -> str:
    return f"{table}_default"


def start_of(month: date) -> datetime:
    """The first instant of ``month`` in UTC: a partition's lower bound."""
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def holding(connection: Connection, table: str, moment: datetime) -> str:
    """The table that holds ``table``'s rows of ``moment``: its month's partition, or the default
    one when that month has none, or ``table`` itself when it is not partitioned."""
    if not is_partitioned(connection):
        return table
    name = partition_name(table, month_of(moment))
    return name if _exists(connection, name) else default_name(table)


def _exists(connection: Connection, name: str) -> bool:
    return connection.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}) is True


def _default_holds(connection: Connection, table: str, column: str, month: date) -> bool:
    """Whether the default partition of ``table`` has rows of ``month`` (then the month cannot
    be created: PostgreSQL refuses a partition whose rows sit in the default)."""
    return bool(
        connection.scalar(
            text(
                f"SELECT EXISTS (SELECT 1 FROM {default_name(table)} "  # noqa: S608 (our names)
                f"WHERE {column} >= :start AND {column} < :end)"
            ),
            {"start": start_of(month), "end": start_of(next_month(month))},
        )
    )


def ensure_months(connection: Connection, first: date, last: date) -> list[str]:
    """Create the default partitions and each month from ``first`` to ``last`` (included) of
    every partitioned table that is missing; returns the names created. Nothing on SQLite or
    on an unpartitioned table."""
    if not is_partitioned(connection):
        return []
    created: list[str] = []
    for table, _column in PARTITIONED:
        name = default_name(table)
        if not _exists(connection, name):
            connection.execute(text(f"CREATE TABLE {name} PARTITION OF {table} DEFAULT"))
            created.append(name)
    for month in months(first, last):
        missing = [
            (table, column)
            for table, column in PARTITIONED
            if not _exists(connection, partition_name(table, month))
        ]
        held = [
            table for table, column in missing if _default_holds(connection, table, column, month)
        ]
        if held:
            log.warning(
                "partitions: %s is left in the default partition of %s, which holds its rows",
                f"{month:%Y-%m}",
                ", ".join(held),
            )
            continue
        for table, _column in missing:
            name = partition_name(table, month)
            connection.execute(
                text(
                    f"CREATE TABLE {name} PARTITION OF {table} "
                    f"FOR VALUES FROM ('{start_of(month).isoformat()}') "
                    f"TO ('{start_of(next_month(month)).isoformat()}')"
                )
            )
            created.append(name)
    if created:
        log.info("partitions: created %s", ", ".join(created))
    return created


def create_ahead(connection: Connection, now: datetime, *, lock_timeout: str = "5s") -> list[str]:
    """:func:`ensure_months` for the current month and :data:`MONTHS_AHEAD` more, waiting at
    most ``lock_timeout`` for each lock (the caller commits)."""
    if not is_partitioned(connection):
        return []
    connection.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": lock_timeout}
    )
    last = month_of(now)
    for _ in range(MONTHS_AHEAD):
        last = next_month(last)
    return ensure_months(connection, month_of(now), last)


def _month_of_name(table: str, name: str) -> date | None:
    """The month ``name`` is ``table``'s partition of (named as :func:`partition_name` names
    them), else None."""
    matched = re.fullmatch(rf"{table}_p(\d{{4}})_(\d{{2}})", name)
    return date(int(matched[1]), int(matched[2]), 1) if matched else None


def months_before(connection: Connection, cutoff: datetime) -> list[date]:
    """The months with a partition attached to ``notifications`` that ended at or before
    ``cutoff``, oldest first (none on SQLite)."""
    if not is_partitioned(connection):
        return []
    names = connection.scalars(
        text(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "WHERE pg_inherits.inhparent = to_regclass('notifications')"
        )
    )
    table = PARTITIONED[0][0]
    months = [month for name in names if (month := _month_of_name(table, name)) is not None]
    return sorted(month for month in months if start_of(next_month(month)) <= cutoff)


def oldest_month(connection: Connection) -> date | None:
    """The oldest month with a partition attached to ``notifications`` (None: none, or SQLite)."""
    months = months_before(connection, datetime.max.replace(tzinfo=UTC))
    return months[0] if months else None


REFERENCED = ("api_keys", "recipients", "campaigns", "campaign_batches")
"""The tables ``notifications`` has foreign keys to: detaching or dropping a month of it
changes their triggers, so it locks them too."""

LOCK_TIMEOUT = "1s"
"""How long a month's detach or drop waits for each lock. Statements on a table queue behind a
waiting exclusive request, so sending can stall this long at most; a month whose lock is not
granted is left to the next run."""


def _lock_referenced(connection: Connection, lock_timeout: str) -> None:
    """Set ``lock_timeout`` for the transaction and lock the tables ``notifications``
    references first, as every writer does (a submit writes ``recipients``, then inserts the
    notification), so a detach or drop never waits on them while holding ``notifications``."""
    connection.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": lock_timeout}
    )
    connection.execute(text(f"LOCK TABLE {', '.join(REFERENCED)} IN SHARE ROW EXCLUSIVE MODE"))


def detach_month(connection: Connection, month: date, *, lock_timeout: str = LOCK_TIMEOUT) -> None:
    """Detach ``month``'s partition from every partitioned table, in the caller's transaction:
    catalog changes only, so each lock is held for moments. The referenced tables are locked
    first, then ``notifications``, then ``notification_decisions``: the order writers take
    them in (a claim updates notifications, then writes its decisions). A lock not granted
    within ``lock_timeout`` raises, and the month waits for the next run."""
    _lock_referenced(connection, lock_timeout)
    for table, _column in PARTITIONED:
        name = partition_name(table, month)
        attached = connection.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(:name) "
                "AND inhparent = to_regclass(:parent))"
            ),
            {"name": name, "parent": table},
        )
        if attached:
            connection.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))


def detached_months(connection: Connection) -> list[date]:
    """Months whose partition of some partitioned table is detached and not dropped yet,
    oldest first: their rows are no longer the service's and wait to be counted and dropped."""
    if not is_partitioned(connection):
        return []
    found: set[date] = set()
    for table, _column in PARTITIONED:
        names = connection.scalars(
            text(
                "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
                "AND relname LIKE :prefix"
            ),
            {"prefix": f"{table}\\_p%"},
        )
        found.update(month for name in names if (month := _month_of_name(table, name)))
    return sorted(found)


def take_detached(connection: Connection, month: date) -> bool:
    """Hold ``month``'s detached tables for the caller's transaction (an advisory lock), so two
    retention runs never count one month twice; False if another run holds them or they are
    gone."""
    name = partition_name(PARTITIONED[0][0], month)
    held = connection.scalar(
        text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), {"key": f"notify:{name}"}
    )
    return bool(held) and any(
        _exists(connection, partition_name(table, month)) for table, _column in PARTITIONED
    )


def detached_rows(month: date) -> TableClause:
    """``month``'s detached notifications, with the columns the daily counts read."""
    return sqlalchemy.table(
        partition_name(PARTITIONED[0][0], month),
        *(
            sqlalchemy.column(name)
            for name in ("created_at", "category", "template", "status", "reason")
        ),
    )


def drop_detached(connection: Connection, month: date, *, lock_timeout: str = LOCK_TIMEOUT) -> None:
    """Drop ``month``'s detached tables (the caller commits). Their foreign keys have triggers
    on the referenced tables, so those are locked first, waiting at most ``lock_timeout``."""
    _lock_referenced(connection, lock_timeout)
    for table_name, _column in reversed(PARTITIONED):
        connection.execute(text(f"DROP TABLE IF EXISTS {partition_name(table_name, month)}"))
