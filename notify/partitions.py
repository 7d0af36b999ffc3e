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
* :func:`drop_month` drops a month's partitions of both tables in the caller's transaction,
  waiting at most ``lock_timeout`` for the lock on the parent tables, so a long query never
  stalls sending behind it: the drop fails and the next run tries again.

Functions take a SQLAlchemy ``Connection`` (a session's, or a migration's) and never commit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

from notify.db import on_postgresql

log = logging.getLogger(__name__)

PARTITIONED: tuple[tuple[str, str], ...] = (
    ("notifications", "created_at"),
    ("notification_decisions", "notification_created_at"),
)
"""Each partitioned table and its partition key column; the first is the one retention reads."""

MONTHS_AHEAD = 3
"""Months past the current one that :func:`create_ahead` keeps created."""

_MONTH_NAME = re.compile(r"_p(\d{4})_(\d{2})$")


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
        name == default_name(table)
        or (name.startswith(f"{table}_p") and _MONTH_NAME.search(name) is not None)
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


def months_before(connection: Connection, cutoff: datetime) -> list[date]:
    """The months with a partition of ``notifications`` that ended at or before ``cutoff``,
    oldest first (none on SQLite)."""
    if not is_partitioned(connection):
        return []
    names = connection.scalars(
        text(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "WHERE pg_inherits.inhparent = to_regclass('notifications')"
        )
    )
    found = []
    for name in names:
        matched = _MONTH_NAME.search(name)
        if matched:
            month = date(int(matched[1]), int(matched[2]), 1)
            if start_of(next_month(month)) <= cutoff:
                found.append(month)
    return sorted(found)


def drop_month(connection: Connection, month: date, *, lock_timeout: str = "5s") -> None:
    """Drop ``month``'s partition of every partitioned table, decisions first (the caller
    commits; waits at most ``lock_timeout`` for the lock on each parent table)."""
    connection.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": lock_timeout}
    )
    for table, _column in reversed(PARTITIONED):
        connection.execute(text(f"DROP TABLE IF EXISTS {partition_name(table, month)}"))
