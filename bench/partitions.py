"""The notifications table as it grows: do the hot queries use their indexes and stay fast?

For each size (``--small-rows`` first, then ``--rows``), in a fresh PostgreSQL database of its
own: migrate, create the monthly partitions of ``notifications`` when the code has them
(``notify.partitions.ensure_months``: the ``--months`` months the rows span and 2 ahead), load
rows server-side (``INSERT ... SELECT ... FROM generate_series``, one transaction per million
rows), ``ANALYZE``, then run the service's own functions on rows picked at random, each in a
transaction that is rolled back:

* the transactional claim (``outbox.claim_many`` of 50 queued ids, a send task's group);
* the campaign batch claim (``campaigns.batches.claim_messages`` of 20 ids) and the batch's
  due rows (``campaigns.batches._due_rows``);
* the status lookup behind ``GET /v1/notifications/{id}`` (``outbox.get_for_caller``);
* the sweeper's page (``outbox.sweep_stuck``, 500 rows, the service's settings);
* the stats for the 7 and the 30 days ending today (``privacy.stats.daily``), after the
  finished hours were counted into the daily counts as the periodic task does, where the code
  has that task (its time is printed).

Every statement each one sends is captured (a ``before_cursor_execute`` listener) and run
again under ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``; a ``Seq Scan`` on ``notifications`` or
one of its partitions that read any row fails "uses its indexes" (one of an empty partition, a
month ahead or the default, is printed but not counted: it costs nothing). Each function is
timed ``--repeat`` times (median, p95) at both sizes; the figure is the time at ``--rows``, the
baseline the time at ``--small-rows`` in the same run, and the goal at most 2x the baseline
with the indexes used at ``--rows`` (at the small size a partition of a few hundred rows is
rightly scanned whole, so that size's plans are printed, not judged).

    python -m bench.partitions [--rows 10000000] [--small-rows 100000] [--months 12] [--repeat 50]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from bench.support import bench_engine, code_fingerprint, report_row, say, settings_for

GOAL_RATIO = 2.0
CHUNK_ROWS = 1_000_000  # rows a transaction while loading
RECIPIENTS = 100_000  # the same people at every size: only notifications grows
CAMPAIGN_SIZE = 10_000  # recipients of one (historical) campaign
BATCH_SIZE = 500  # rows of one campaign batch (NOTIFY_CAMPAIGN_BATCH_SIZE's default)
# The rows still in flight, the same at every size (transactional, all with the bench's key):
QUEUED_FRESH = 1_200  # queued in the last minute: what the claim takes
QUEUED_STUCK = 300  # queued, due 10 to 60 minutes ago: the sweeper publishes them again
SENDING_FRESH = 300  # claimed in the last 30 seconds
SENDING_STUCK = 200  # claimed 10 to 60 minutes ago (a dead worker), 20 of them at max attempts
LIVE = QUEUED_FRESH + QUEUED_STUCK + SENDING_FRESH + SENDING_STUCK
GAVE_UP = 20
CLAIM_IDS = 50  # NOTIFY_SEND_BATCH_SIZE's default: the ids of one send task
CAMPAIGN_CLAIM_IDS = 20  # NOTIFY_CAMPAIGN_COMMIT_EVERY's default: one group of a batch
SWEEP_PAGE = 500  # notify.delivery.sweeper.PAGE_SIZE
SENDING_DOMAIN = "notify.localhost"
SEED = "bench-partitions-"  # the random part of each id is md5(SEED || row key)
EXPLAIN = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "


def id_sql(created: str, key: str) -> str:
    """SQL for a row's id as the service makes it (``new_notification_id``): a UUID version 7
    whose timestamp is ``created`` to the millisecond, its random bits from md5(SEED || key)."""
    random_hex = f"md5(:seed || {key})"
    return (
        f"(lpad(to_hex(floor(extract(epoch FROM {created}) * 1000)::bigint), 12, '0') || '7' "
        f"|| substr({random_hex}, 14, 3) || '8' || substr({random_hex}, 18, 15))::uuid::text"
    )


# --- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where the rows of one size go: counts, time window and the ids the queries pick from."""

    rows: int
    now: datetime
    start: datetime
    key_id: int

    @property
    def span(self) -> float:
        """Seconds from the oldest row to now."""
        return (self.now - self.start).total_seconds()

    @property
    def campaigns(self) -> int:
        """Historical campaigns: every even row belongs to one, ``CAMPAIGN_SIZE`` rows each."""
        return max(1, -(-(self.rows // 2) // CAMPAIGN_SIZE))

    @property
    def batches(self) -> int:
        return self.campaigns * (CAMPAIGN_SIZE // BATCH_SIZE)

    @property
    def live_campaign(self) -> int:
        return self.campaigns + 1

    @property
    def live_batch(self) -> int:
        return self.batches + 1

    pools: Pools | None = None  # read back after the load

    def _pools(self) -> Pools:
        if self.pools is None:
            raise RuntimeError("read the pools of ids after the load")
        return self.pools

    def transactional_id(self, rng: random.Random) -> str:
        """A random finished transactional row of the bulk load."""
        return rng.choice(self._pools().finished)

    def queued_ids(self, rng: random.Random, count: int) -> list[str]:
        """``count`` distinct queued transactional rows (fresh or stuck), at random."""
        return rng.sample(self._pools().queued, count)

    def batch_ids(self, rng: random.Random, count: int) -> list[str]:
        """``count`` distinct queued rows of the live campaign batch, at random."""
        return rng.sample(self._pools().batch, count)


@dataclass(frozen=True)
class Pools:
    """The ids the queries pick from, read back after the load: an id carries its row's time,
    so it cannot be worked out from the row's number alone."""

    finished: list[str]
    queued: list[str]
    batch: list[str]


def read_pools(connection: Connection, layout: Layout, sample: int = 5_000) -> Pools:
    """A uniform sample of finished transactional rows, every queued transactional row and
    every row of the live campaign batch."""
    percent = min(100.0, 200.0 * sample / max(layout.rows, 1))
    finished = connection.execute(
        text(
            "SELECT id FROM notifications TABLESAMPLE BERNOULLI (:percent) "
            "WHERE campaign_id IS NULL AND status = 'sent' LIMIT :sample"
        ),
        {"percent": percent, "sample": sample},
    ).scalars()
    queued = connection.execute(
        text("SELECT id FROM notifications WHERE status = 'queued' AND campaign_id IS NULL")
    ).scalars()
    batch = connection.execute(
        text("SELECT id FROM notifications WHERE batch_id = :batch"), {"batch": layout.live_batch}
    ).scalars()
    return Pools(list(finished), list(queued), list(batch))


def table_columns(connection: Connection, table: str) -> dict[str, bool]:
    """The columns of ``table`` as they are now: name -> whether a value must be given
    (NOT NULL without a default)."""
    rows = connection.execute(
        text(
            "SELECT column_name, is_nullable = 'NO' AND column_default IS NULL "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = :table"
        ),
        {"table": table},
    ).all()
    return {str(name): bool(required) for name, required in rows}


def insert_select(
    connection: Connection,
    table: str,
    values: Mapping[str, str],
    source: str,
    params: Mapping[str, Any],
) -> int:
    """``INSERT INTO table (...) SELECT <values> FROM <source>``, with the columns ``table``
    has right now: an expression for a column it lacks is left out (the schema changes while
    this bench is written), a required column without an expression is an error. Row count."""
    columns = table_columns(connection, table)
    missing = [name for name, required in columns.items() if required and name not in values]
    if missing:
        raise RuntimeError(
            f"{table} has NOT NULL column(s) the bench does not fill: {', '.join(missing)} "
            "(add them to bench/partitions.py)"
        )
    used = [name for name in values if name in columns]
    statement = (
        f"INSERT INTO {table} ({', '.join(used)}) "
        f"SELECT {', '.join(values[name] for name in used)} FROM {source}"
    )
    return int(getattr(connection.execute(text(statement), dict(params)), "rowcount", 0))


def encrypted(engine: Engine, table: str, column: str, value: Any) -> Any:
    """``value`` as the column's type binds it (encrypted with the process's data keys)."""
    from notify.models import Base

    column_type = Base.metadata.tables[table].c[column].type
    process = column_type.bind_processor(engine.dialect)
    return process(value) if process is not None else value


# Every bulk row is one number g (1..rows): odd g are transactional rows of the bench's key,
# spread evenly over the window in order of g; even g belong to campaign cno (CAMPAIGN_SIZE
# rows each, all created at its planning time, as notify.campaigns.planning does), k-th of it.
_BULK_SOURCE = """(
  SELECT s.*,
         CASE WHEN r < 0.01 THEN 'suppressed' WHEN r < 0.02 THEN 'failed'
              WHEN campaign_row AND r < 0.025 THEN 'cancelled' ELSE 'sent' END AS st,
         created + CASE WHEN campaign_row THEN (k::float8 / :campaign_size) * 3600
                        ELSE 0.5 END * interval '1 second' AS handled
  FROM (
    SELECT g, g % 2 = 0 AS campaign_row, (g / 2 - 1) / :campaign_size AS cno,
           (g / 2 - 1) % :campaign_size AS k, random() AS r, random() AS r2,
           CASE WHEN g % 2 = 0
                THEN CAST(:start AS timestamptz)
                     + (((g / 2 - 1) / :campaign_size) + 0.5) * :campaign_step
                     * interval '1 second'
                ELSE CAST(:start AS timestamptz) + ((g - 0.5) / :rows) * :span
                     * interval '1 second' END AS created
    FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g
  ) AS s
) AS t"""

_BULK_VALUES = {
    "id": id_sql("created", "g::text"),
    "api_key_id": "CASE WHEN campaign_row THEN NULL ELSE CAST(:key_id AS integer) END",
    "idempotency_key": "CASE WHEN campaign_row THEN NULL ELSE 'idem-' || g::text END",
    "request_hash": "CASE WHEN campaign_row THEN NULL ELSE md5('q' || g::text) || md5(g::text) END",
    "recipient_id": (
        "CASE WHEN campaign_row THEN (cno * :campaign_size + k) % :recipients + 1 "
        "ELSE (g * 7919) % :recipients + 1 END"
    ),
    "template": (
        "CASE WHEN campaign_row THEN 'product_update' WHEN r2 < 0.8 THEN 'security_alert' "
        "ELSE 'admin_notice' END"
    ),
    "category": (
        "CASE WHEN campaign_row THEN 'product_updates' WHEN r2 < 0.8 THEN 'security' "
        "ELSE 'admin' END"
    ),
    "data": "CASE WHEN campaign_row THEN CAST(:data_empty AS text) ELSE CAST(:data AS text) END",
    "campaign_id": "CASE WHEN campaign_row THEN cno + 1 END",
    "batch_id": "CASE WHEN campaign_row THEN cno * :batches_per + k / :batch_size + 1 END",
    "status": "st",
    "reason": (
        "CASE WHEN st = 'suppressed' AND r < 0.005 THEN 'unsubscribed' "
        "WHEN st = 'suppressed' THEN 'bounced' "
        "WHEN st = 'failed' THEN '550 5.1.1 <address>: no such user' END"
    ),
    "attempts": "CASE WHEN st = 'cancelled' THEN 0 ELSE 1 END",
    "next_attempt_at": "created",
    "claimed_at": "CASE WHEN st <> 'cancelled' THEN handled END",
    "message_id": "CASE WHEN st <> 'cancelled' THEN '<' || md5('m' || g::text) || '@' || :domain || '>' END",  # noqa: E501
    "created_at": "created",
    "updated_at": "handled + interval '1 second'",
    "sent_at": "CASE WHEN st = 'sent' THEN handled + interval '200 milliseconds' END",
    "request_id": "CASE WHEN campaign_row THEN NULL ELSE substr(md5('rq' || g::text), 1, 32) END",
}

# The rows in flight (i = 1..LIVE), relative to now: see QUEUED_FRESH and the rest.
_LIVE_SOURCE = """(
  SELECT i, phase, created,
         CASE WHEN phase IN ('queued stuck', 'sending stuck') THEN 1
              WHEN phase = 'queued fresh' THEN 0 ELSE 1 END
         + CASE WHEN i > :live - :gave_up THEN :max_attempts - 1 ELSE 0 END AS tries
  FROM (
    SELECT i, phase,
           CAST(:now AS timestamptz) - CASE phase
             WHEN 'queued fresh' THEN (i::float8 / :queued_fresh) * 60
             WHEN 'sending fresh' THEN ((i - :sending_from)::float8 / :sending_fresh) * 30
             ELSE 600 + (i % 100) * 30 END * interval '1 second' AS created
    FROM (
      SELECT i, CASE WHEN i <= :queued_fresh THEN 'queued fresh'
                     WHEN i <= :queued_fresh + :queued_stuck THEN 'queued stuck'
                     WHEN i <= :sending_from + :sending_fresh THEN 'sending fresh'
                     ELSE 'sending stuck' END AS phase
      FROM generate_series(1, :live) AS i
    ) AS p
  ) AS c
) AS t"""

_LIVE_VALUES = {
    "id": id_sql("created", "'live-' || i::text"),
    "api_key_id": "CAST(:key_id AS integer)",
    "idempotency_key": "'live-' || i::text",
    "request_hash": "md5('lq' || i::text) || md5('l' || i::text)",
    "recipient_id": "(i * 7919) % :recipients + 1",
    "template": "'security_alert'",
    "category": "'security'",
    "data": "CAST(:data AS text)",
    "status": "CASE WHEN phase LIKE 'queued%' THEN 'queued' ELSE 'sending' END",
    "attempts": "tries",
    "next_attempt_at": "created",
    "claimed_at": "CASE WHEN phase LIKE 'sending%' THEN created + interval '1 second' END",
    "message_id": "CASE WHEN tries > 0 THEN '<' || md5('lm' || i::text) || '@' || :domain || '>' END",  # noqa: E501
    "created_at": "created",
    "updated_at": "created + interval '1 second'",
    "request_id": "substr(md5('lr' || i::text), 1, 32)",
}

_BATCH_ROW_VALUES = {
    "id": id_sql("CAST(:planned AS timestamptz)", "'batch-' || k::text"),
    "recipient_id": "k + 1",
    "template": "'product_update'",
    "category": "'product_updates'",
    "data": "CAST(:data_empty AS text)",
    "campaign_id": "CAST(:campaign AS integer)",
    "batch_id": "CAST(:batch AS integer)",
    "status": "'queued'",
    "attempts": "0",
    "next_attempt_at": "CAST(:now AS timestamptz) - interval '1 minute'",
    "created_at": "CAST(:planned AS timestamptz)",
    "updated_at": "CAST(:planned AS timestamptz)",
}


def _campaign_values(planned: str, status: str, finished: str) -> dict[str, str]:
    return {
        "id": "c",
        "name": "'bench campaign ' || c::text",
        "template": "'product_update'",
        "category": "'product_updates'",
        "data": "CAST(:campaign_data AS json)",
        "audience": "CAST(:audience AS json)",
        "status": status,
        "start_at": planned,
        "planned_through": f"{CAMPAIGN_SIZE}",
        "planning_done": "true",
        "planned_at": planned,
        "batches_planned": f"{CAMPAIGN_SIZE // BATCH_SIZE}",
        "created_by": "'bench'",
        "created_at": f"{planned} - interval '1 day'",
        "updated_at": planned,
        "started_at": planned,
        "finished_at": finished,
    }


def _batch_values(due: str, status: str, lease: str) -> dict[str, str]:
    return {
        "id": "b",
        "campaign_id": f"(b - 1) / {CAMPAIGN_SIZE // BATCH_SIZE} + 1",
        "batch_no": f"(b - 1) % {CAMPAIGN_SIZE // BATCH_SIZE} + 1",
        "status": status,
        "due_at": due,
        "lease_until": lease,
        "attempts": "1",
        "updated_at": due,
    }


def _phase(engine: Engine, label: str, work: Callable[[Connection], int]) -> float:
    """``work`` in one transaction; prints what it did and returns the seconds it took."""
    started = time.monotonic()
    with engine.begin() as connection:
        count = work(connection)
    seconds = time.monotonic() - started
    say(f"    {label}: {count:,} rows in {seconds:.1f} s")
    return seconds


def load(engine: Engine, layout: Layout) -> float:
    """Recipients, campaigns, batches, ``layout.rows`` notifications and the rows in flight;
    then ``ANALYZE``. Returns the seconds it took (``ANALYZE`` included)."""
    from notify.message.templates import get_template

    started = time.monotonic()
    params: dict[str, Any] = {
        "seed": SEED,
        "rows": layout.rows,
        "start": layout.start,
        "now": layout.now,
        "span": layout.span,
        "campaign_size": CAMPAIGN_SIZE,
        "campaign_step": layout.span / layout.campaigns,
        "batches_per": CAMPAIGN_SIZE // BATCH_SIZE,
        "batch_size": BATCH_SIZE,
        "recipients": RECIPIENTS,
        "key_id": layout.key_id,
        "domain": SENDING_DOMAIN,
        "data": encrypted(
            engine, "notifications", "data", dict(get_template("security_alert").sample)
        ),
        "data_empty": encrypted(engine, "notifications", "data", {}),
        "email": encrypted(engine, "recipients", "email", "bench-person@example.com"),
        "first_name": encrypted(engine, "recipients", "first_name", "Ada"),
        "campaign_data": json.dumps(dict(get_template("product_update").sample)),
        "audience": json.dumps({"locales": [], "user_ids": []}),
        "campaigns": layout.campaigns,
        "batches": layout.batches,
        "live_planned": layout.now - timedelta(minutes=10),
    }
    recipient_values = {
        "id": "i",
        "public_id": "'p' || i::text",
        "user_id": "'bench-user-' || i::text",
        "email": "CAST(:email AS text)",
        "first_name": "CAST(:first_name AS text)",
        "email_hash": "md5('e' || i::text) || md5('h' || i::text)",
        "locale": "'en'",
        "timezone": "'UTC'",
        "created_at": "CAST(:start AS timestamptz)",
        "updated_at": "CAST(:start AS timestamptz)",
    }
    planned = "CAST(:start AS timestamptz) + (c - 0.5) * :campaign_step * interval '1 second'"
    due = (
        "CAST(:start AS timestamptz) + (((b - 1) / :batches_per) + 0.5) * :campaign_step "
        "* interval '1 second'"
    )
    live_planned = "CAST(:live_planned AS timestamptz)"

    def recipients(connection: Connection) -> int:
        return insert_select(
            connection, "recipients", recipient_values,
            "generate_series(1, CAST(:recipients AS integer)) AS i", params,
        )  # fmt: skip

    def campaigns(connection: Connection) -> int:
        finished = f"{planned} + interval '1 hour'"
        return insert_select(
            connection, "campaigns", _campaign_values(planned, "'completed'", finished),
            "generate_series(1, CAST(:campaigns AS integer)) AS c", params,
        ) + insert_select(
            connection, "campaigns", _campaign_values(live_planned, "'running'", "NULL"),
            "(SELECT CAST(:campaigns AS integer) + 1 AS c) AS one", params,
        )  # fmt: skip

    def campaign_batches(connection: Connection) -> int:
        lease = "CAST(:now AS timestamptz) + interval '1 hour'"
        running = {
            **_batch_values(live_planned, "'running'", lease),
            "campaign_id": "CAST(:campaigns AS integer) + 1",
            "batch_no": "1",
        }
        return insert_select(
            connection, "campaign_batches", _batch_values(due, "'done'", "NULL"),
            "generate_series(1, CAST(:batches AS integer)) AS b", params,
        ) + insert_select(
            connection, "campaign_batches", running,
            "(SELECT CAST(:batches AS integer) + 1 AS b) AS one", params,
        )  # fmt: skip

    _phase(engine, f"recipients (1..{RECIPIENTS:,})", recipients)
    _phase(engine, "campaigns (historical ones completed, one running)", campaigns)
    _phase(engine, f"campaign batches ({BATCH_SIZE} rows each, one running)", campaign_batches)
    loaded = 0
    bulk_started = time.monotonic()
    for low in range(1, layout.rows + 1, CHUNK_ROWS):
        high = min(low + CHUNK_ROWS - 1, layout.rows)
        chunk_started = time.monotonic()
        with engine.begin() as connection:
            loaded += insert_select(
                connection, "notifications", _BULK_VALUES, _BULK_SOURCE,
                {**params, "lo": low, "hi": high},
            )  # fmt: skip
        now = time.monotonic()
        rate = loaded / (now - bulk_started)
        left = (layout.rows - loaded) / rate if rate else 0.0
        say(
            f"    notifications {loaded:,}/{layout.rows:,}: this chunk "
            f"{(high - low + 1) / (now - chunk_started):,.0f} rows/s, overall {rate:,.0f} rows/s"
            f"{f', about {left / 60:.1f} min left' if loaded < layout.rows else ''}"
        )
    live = {
        **params,
        "live": LIVE,
        "queued_fresh": QUEUED_FRESH,
        "queued_stuck": QUEUED_STUCK,
        "sending_fresh": SENDING_FRESH,
        "sending_from": QUEUED_FRESH + QUEUED_STUCK,
        "gave_up": GAVE_UP,
        "max_attempts": 8,
        "campaign": layout.live_campaign,
        "batch": layout.live_batch,
        "planned": params["live_planned"],
    }

    def in_flight(connection: Connection) -> int:
        batch_rows = f"generate_series(0, {BATCH_SIZE - 1}) AS k"
        return insert_select(
            connection, "notifications", _LIVE_VALUES, _LIVE_SOURCE, live
        ) + insert_select(connection, "notifications", _BATCH_ROW_VALUES, batch_rows, live)

    _phase(engine, "notifications in flight (queued, sending, stuck; one running batch)", in_flight)
    analyze_started = time.monotonic()
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    say(f"    ANALYZE: {time.monotonic() - analyze_started:.1f} s")
    return time.monotonic() - started


# --- partitions ----------------------------------------------------------------------------


def month_first(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def add_months(first: date, count: int) -> date:
    index = first.year * 12 + first.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def make_partitions(sessions: sessionmaker[Session], first: date, last: date) -> str:
    """``notify.partitions.ensure_months`` from ``first`` to ``last`` when the code has it;
    says what it did."""
    import notify

    spec = importlib.util.find_spec("notify.partitions")
    # Only the module beside the notify package in use (an editable install's finder would
    # also find one in another checkout).
    if (
        spec is None
        or spec.origin is None
        or Path(spec.origin).parent not in {Path(folder) for folder in notify.__path__}
    ):
        return "notify.partitions does not exist: no partitions created"
    module = importlib.import_module("notify.partitions")
    ensure = getattr(module, "ensure_months", None)
    if ensure is None:
        return "notify.partitions has no ensure_months: no partitions created"
    with sessions.begin() as session:
        # The brief says a session, the module (so far) takes a Connection: give what it names.
        first_parameter = next(iter(inspect.signature(ensure).parameters))
        target = session if first_parameter == "session" else session.connection()
        created = ensure(target, first, last)
    return (
        f"ensure_months({first:%Y-%m}, {last:%Y-%m}) created "
        f"{len(created) if isinstance(created, Sequence) else '?'} table(s)"
    )


def count_finished_hours(
    sessions: sessionmaker[Session], settings: Any, layout: Layout
) -> float | None:
    """What the periodic task would have done by now where the code counts finished hours into
    the daily counts (``notify.privacy.daily_counts.count_finished_hours``): every finished
    hour of the load, counted; its time, or None where the code has no such task."""
    module = importlib.import_module("notify.privacy.daily_counts")
    counting = getattr(module, "count_finished_hours", None)
    if counting is None:
        say("  finished hours: not counted (the code has no such task)")
        return None
    started = time.monotonic()
    hours = counting(
        sessions, log_days=settings.retention_log_days, now=layout.now, budget_seconds=86_400
    )
    took = time.monotonic() - started
    say(
        f"  finished hours: {len(hours)} counted into the daily counts in {took:.1f} s (the "
        f"periodic task's work, done once per hour; {layout.rows / took:,.0f} rows/s)"
    )
    return took


def family(connection: Connection) -> dict[str, float]:
    """``notifications`` and each of its partitions, with the rows the planner believes each
    has (``reltuples``)."""
    rows = connection.execute(
        text(
            "SELECT c.relname, c.reltuples FROM pg_class c "
            "WHERE c.oid = to_regclass('notifications') "
            "OR c.oid IN (SELECT relid FROM pg_partition_tree('notifications'))"
        )
    ).all()
    return {str(name): float(tuples) for name, tuples in rows}


def describe_table(connection: Connection) -> tuple[bool, str]:
    """Whether ``notifications`` is partitioned, and a line about its partitions and size."""
    kind = connection.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'notifications'"))
    size = connection.scalar(
        text(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
            "WHERE c.oid = to_regclass('notifications') "
            "OR c.oid IN (SELECT relid FROM pg_partition_tree('notifications'))"
        )
    )
    if kind != "p":
        return False, f"notifications is NOT partitioned (relkind {kind!r}); {size} with indexes"
    counts = connection.execute(
        text(
            "SELECT c.relname, c.reltuples::bigint FROM pg_partition_tree('notifications') t "
            "JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf ORDER BY c.relname"
        )
    ).all()
    spread = ", ".join(f"{name.removeprefix('notifications_')} {int(n):,}" for name, n in counts)
    return True, (
        f"notifications IS partitioned (relkind 'p'): {len(counts)} partitions, {size} with "
        f"indexes; rows by partition (ANALYZE's estimate): {spread}"
    )


# --- capturing statements and reading their plans ------------------------------------------


@dataclass
class Capture:
    """The statements an engine sends while :attr:`on`, with their parameters."""

    on: bool = False
    statements: list[tuple[str, Any]] = field(default_factory=list)

    def listen(self, engine: Engine) -> None:
        def before(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
        ) -> None:
            if self.on:
                self.statements.append((statement, parameters[0] if many else parameters))

        event.listen(engine, "before_cursor_execute", before)

    @contextmanager
    def recording(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        self.on = True
        try:
            yield self.statements
        finally:
            self.on = False


@dataclass
class PlanReport:
    """What the plans of one function's statements showed."""

    lines: list[str] = field(default_factory=list)
    seq_scans: list[str] = field(default_factory=list)  # read rows: "uses its indexes" fails
    empty_scans: dict[str, list[str]] = field(default_factory=dict)  # statement -> partitions
    statements: int = 0
    raw: list[dict[str, Any]] = field(default_factory=list)

    @property
    def indexes_used(self) -> bool:
        """No sequential scan of ``notifications`` or of a partition that read any row (a
        seq scan of an empty partition, a month ahead or the default, costs nothing)."""
        return not self.seq_scans

    def findings(self) -> list[str]:
        """Lines about every sequential scan of the table or its partitions."""
        found = [f"    SEQ SCAN (fails 'uses its indexes'): {scan}" for scan in self.seq_scans]
        found += [
            f"    {where}: Seq Scan on {len(names)} empty partition(s) ({', '.join(names)}): "
            "0 rows read, not counted"
            for where, names in self.empty_scans.items()
        ]
        return found


def _node_label(node: Mapping[str, Any]) -> str:
    label = str(node["Node Type"])
    if node.get("Parallel Aware"):
        label = f"Parallel {label}"
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    if "Relation Name" in node:
        label += f" on {node['Relation Name']}"
    rows, loops = node.get("Actual Rows", 0), node.get("Actual Loops", 1)
    return f"{label} (rows {rows:g} x{loops:g})"


def _walk(
    node: Mapping[str, Any],
    depth: int,
    members: Mapping[str, float],
    report: PlanReport,
    where: str,
) -> None:
    """One line per plan node (partitions of an Append folded into one line), recording every
    sequential scan of ``notifications`` or of a partition (:attr:`PlanReport.seq_scans`, or
    :attr:`PlanReport.empty_scans` when it read no row)."""
    indent = "      " + "  " * depth
    children: list[Mapping[str, Any]] = list(node.get("Plans", []))
    relation = node.get("Relation Name")
    if node["Node Type"] == "Seq Scan" and relation in members:
        loops = node.get("Actual Loops", 1)
        kept = node.get("Actual Rows", 0) * loops
        read = kept + node.get("Rows Removed by Filter", 0) * loops
        if not read:
            report.empty_scans.setdefault(where, []).append(str(relation))
        else:
            share = kept / read
            why = (
                "the statement needs most of this partition: an index would not help"
                if share >= 0.5
                else "an index would read fewer rows"
            )
            report.seq_scans.append(
                f"{where}: Seq Scan on {relation}, read {read:,.0f} rows, kept {kept:,.0f} "
                f"({100 * share:.0f}%: {why})"
            )
    scans = {id(child): _scan_of(child, members) for child in children}
    on_partitions = [child for child in children if scans[id(child)] is not None]
    if node["Node Type"] in ("Append", "Merge Append") and len(on_partitions) > 1:
        kinds: dict[str, int] = {}
        for child in on_partitions:
            scan = scans[id(child)]
            assert scan is not None
            used = sorted(set(_indexes(scan, str(scan["Relation Name"]))))
            kind = str(scan["Node Type"]) + (f" ({' + '.join(used)})" if used else "")
            if scan is not child:
                kind = f"{child['Node Type']} > {kind}"
            kinds[kind] = kinds.get(kind, 0) + 1
        rows = sum(child.get("Actual Rows", 0) * child.get("Actual Loops", 1) for child in children)
        removed = node.get("Subplans Removed", 0)
        report.lines.append(
            f"{indent}{node['Node Type']} over {len(on_partitions)} partitions "
            f"({removed} pruned at startup): "
            f"{', '.join(f'{kind} x{count}' for kind, count in sorted(kinds.items()))}; "
            f"rows {rows:g}"
        )
        for child in on_partitions:
            _walk_quiet(child, members, report, where)
        if any(scans[id(child)] is not child for child in on_partitions):
            report.lines.append(f"{indent}  (the first of them in full:)")
            _walk(on_partitions[0], depth + 1, members, report, where)
        for child in children:
            if child not in on_partitions:
                _walk(child, depth + 1, members, report, where)
        return
    report.lines.append(f"{indent}{_node_label(node)}")
    for child in children:
        _walk(child, depth + 1, members, report, where)


_SIDE_PLANS = ("SubPlan", "InitPlan")


def _scan_of(node: Mapping[str, Any], members: Mapping[str, float]) -> Mapping[str, Any] | None:
    """The scan of ``notifications`` or a partition that ``node`` is, or wraps (a ``Result``
    above it, say), following only its main input; None if it is not one."""
    if node.get("Relation Name") in members:
        return node
    inputs = [
        child for child in node.get("Plans", []) if child.get("Parent Relationship") == "Outer"
    ]
    return _scan_of(inputs[0], members) if len(inputs) == 1 else None


def _indexes(node: Mapping[str, Any], partition: str) -> Iterator[str]:
    """The indexes a partition's scan uses, without the partition's name (``pkey``,
    ``status_next_attempt_at_idx``), so the partitions' shared pattern shows."""
    if "Index Name" in node:
        yield str(node["Index Name"]).removeprefix(partition).lstrip("_")
    for child in node.get("Plans", []):
        if child.get("Parent Relationship") not in _SIDE_PLANS:
            yield from _indexes(child, partition)


def _walk_quiet(
    node: Mapping[str, Any], members: Mapping[str, float], report: PlanReport, where: str
) -> None:
    """:func:`_walk` without printing (a partition folded into its Append's line)."""
    lines = len(report.lines)
    _walk(node, 0, members, report, where)
    del report.lines[lines:]


def _first_words(statement: str, size: int = 110) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= size else flat[: size - 3] + "..."


def explain(engine: Engine, statements: Sequence[tuple[str, Any]]) -> PlanReport:
    """``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` of each distinct statement, in the order
    they ran, in one transaction that is rolled back."""
    report = PlanReport()
    seen: set[str] = set()
    with engine.connect() as connection:
        transaction = connection.begin()
        members = family(connection)
        try:
            for statement, parameters in statements:
                verb = statement.lstrip().split(None, 1)[0].upper()
                if statement in seen or verb not in ("SELECT", "UPDATE", "INSERT", "DELETE"):
                    continue
                seen.add(statement)
                report.statements += 1
                where = f"statement {report.statements}"
                # The DBAPI cursor, with the parameters exactly as SQLAlchemy passed them.
                cursor = connection.connection.cursor()
                try:
                    cursor.execute(EXPLAIN + statement, parameters)
                    found: Any = cursor.fetchone()
                    document = found[0]
                finally:
                    cursor.close()
                plan = json.loads(document) if isinstance(document, str) else document
                top = plan[0]
                report.raw.append({"statement": statement, "plan": top})
                buffers = (
                    top["Plan"].get("Shared Hit Blocks", 0),
                    top["Plan"].get("Shared Read Blocks", 0),
                )
                report.lines.append(
                    f"    [{report.statements}] {_first_words(statement)}\n"
                    f"      execution {top.get('Execution Time', 0):.2f} ms, planning "
                    f"{top.get('Planning Time', 0):.2f} ms, shared buffers hit {buffers[0]:,} "
                    f"read {buffers[1]:,}"
                )
                _walk(top["Plan"], 0, members, report, where)
        finally:
            transaction.rollback()
    return report


# --- the queries ---------------------------------------------------------------------------


Run = Callable[[Session, random.Random], object]


@dataclass(frozen=True)
class Query:
    name: str
    run: Run


def queries(layout: Layout, settings: Any) -> list[Query]:
    """The service's functions, each as it is called for real, on rows picked at random."""
    from notify.campaigns import batches
    from notify.delivery import outbox
    from notify.privacy import stats

    today = datetime.now(UTC).date()

    def claim(session: Session, rng: random.Random) -> object:
        return outbox.claim_many(
            session, layout.queued_ids(rng, CLAIM_IDS), sending_domain=SENDING_DOMAIN
        ).ready

    def campaign_scope() -> Any:
        return batches.BatchScope(
            batch_id=layout.live_batch,
            fence=1,
            campaign_id=layout.live_campaign,
            category="product_updates",
            defaults=settings.default_subscriptions,
            default_zone=settings.default_timezone,
        )

    def campaign_claim(session: Session, rng: random.Random) -> object:
        return batches.claim_messages(
            session,
            campaign_scope(),
            layout.batch_ids(rng, CAMPAIGN_CLAIM_IDS),
            SENDING_DOMAIN,
            datetime.now(UTC),
        )

    def due_rows(session: Session, rng: random.Random) -> object:
        return batches._due_rows(session, layout.live_batch, datetime.now(UTC))

    def status(session: Session, rng: random.Random) -> object:
        return outbox.get_for_caller(session, layout.transactional_id(rng), layout.key_id)

    def sweep(session: Session, rng: random.Random) -> object:
        return outbox.sweep_stuck(
            session,
            queued_for=timedelta(seconds=settings.sweep_queued_after_seconds),
            sending_for=timedelta(seconds=settings.sweep_sending_after_seconds),
            max_attempts=settings.max_attempts,
            limit=SWEEP_PAGE,
        )

    def stats_days(days: int) -> Run:
        def run(session: Session, rng: random.Random) -> object:
            return stats.daily(session, today - timedelta(days=days - 1), today)

        return run

    return [
        Query(f"claim (outbox.claim_many, {CLAIM_IDS} queued ids)", claim),
        Query(
            f"campaign batch claim (batches.claim_messages, {CAMPAIGN_CLAIM_IDS} ids)",
            campaign_claim,
        ),
        Query(f"campaign batch due rows (batches._due_rows, {BATCH_SIZE} rows)", due_rows),
        Query("status lookup (outbox.get_for_caller)", status),
        Query(f"sweeper (outbox.sweep_stuck, a page of {SWEEP_PAGE})", sweep),
        Query("stats, 7 days to today (privacy.stats.daily)", stats_days(7)),
        Query("stats, 30 days to today (privacy.stats.daily)", stats_days(30)),
    ]


@dataclass
class Measured:
    """One function at one size: its timings (ms) and what its plans showed."""

    times: list[float]
    plans: PlanReport
    result: str

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def describe_result(value: object) -> str:
    """A few words on what a function returned (to see it found work)."""
    if isinstance(value, Mapping):
        if "days" in value:
            return f"{len(value['days'])} day/category/template rows"
        return f"{len(value)} entries"
    if isinstance(value, list | tuple):
        return f"{len(value)} rows"
    if hasattr(value, "requeue"):
        return f"examined {getattr(value, 'examined', '?')}, requeue {len(value.requeue)}"
    return "a row" if value is not None else "nothing"


def measure(
    engine: Engine,
    sessions: sessionmaker[Session],
    capture: Capture,
    query: Query,
    repeat: int,
    rng: random.Random,
) -> Measured:
    """One captured run, the EXPLAIN of what it sent, then ``repeat`` timed runs; each run in
    a transaction of its own that is rolled back."""
    with sessions() as session, capture.recording() as statements:
        session.connection()  # check out and begin before the clock
        result = describe_result(query.run(session, rng))
        session.rollback()
    plans = explain(engine, statements)
    times = []
    for _ in range(repeat):
        with sessions() as session:
            session.connection()
            started = time.perf_counter()
            query.run(session, rng)
            times.append(1000 * (time.perf_counter() - started))
            session.rollback()
    return Measured(times, plans, result)


# --- one size ------------------------------------------------------------------------------


@dataclass
class SizeRun:
    rows: int
    load_seconds: float = 0.0
    count_seconds: float | None = None  # counting the finished hours, where the code does
    partitioned: bool = False
    table: str = ""
    results: dict[str, Measured] = field(default_factory=dict)


def run_size(
    rows: int, args: argparse.Namespace, drops: list[Callable[[], None]], workdir: Path
) -> SizeRun:
    """A fresh database with ``rows`` notifications, loaded and measured (dropped by the
    caller, through ``drops``)."""
    from notify.db import make_session_factory
    from notify.migrate import upgrade
    from notify.producers.api_keys import create_key
    from tests.support.services import create_postgres_database

    url, drop = create_postgres_database()
    drops.append(drop)
    say()
    say(f"{rows:,} rows: database {url.rsplit('/', 1)[1]}")
    upgrade(url)
    settings = settings_for({"NOTIFY_DATABASE_URL": url})
    engine = bench_engine(settings)
    try:
        sessions = make_session_factory(engine)
        now = datetime.now(UTC)
        start = now - timedelta(days=args.months * 365.25 / 12)
        first, last = month_first(start), add_months(month_first(now), 2)
        say(f"  partitions: {make_partitions(sessions, first, last)}")
        with sessions.begin() as session:
            key, _ = create_key(session, "bench", ["notifications:send"])
            key_id = int(key.id)
        layout = Layout(rows=rows, now=now, start=start, key_id=key_id)
        say(
            f"  loading {rows:,} notifications over {args.months} months ({start:%Y-%m-%d} to "
            f"{now:%Y-%m-%d}), {RECIPIENTS:,} recipients, {layout.campaigns:,} campaigns, "
            f"{LIVE + BATCH_SIZE:,} rows in flight"
        )
        run = SizeRun(rows)
        run.load_seconds = load(engine, layout)
        say(
            f"  load time: {run.load_seconds:.1f} s ({rows / run.load_seconds:,.0f} rows/s overall)"
        )
        run.count_seconds = count_finished_hours(sessions, settings, layout)
        with engine.connect() as connection:
            run.partitioned, run.table = describe_table(connection)
            layout = replace(layout, pools=read_pools(connection, layout))
        say(f"  {run.table}")
        capture = Capture()
        capture.listen(engine)
        rng = random.Random(rows)
        plans_out: list[dict[str, Any]] = []
        for query in queries(layout, settings):
            measured = measure(engine, sessions, capture, query, args.repeat, rng)
            run.results[query.name] = measured
            plans_out.append({"query": query.name, "plans": measured.plans.raw})
            say()
            say(
                f"  {query.name}: median {measured.median:.2f} ms, p95 {measured.p95:.2f} ms "
                f"over {len(measured.times)} runs; returned {measured.result}; "
                f"{measured.plans.statements} distinct statement(s); "
                f"indexes used: {'yes' if measured.plans.indexes_used else 'NO'}"
            )
            for line in [*measured.plans.lines, *measured.plans.findings()]:
                say(line)
        kept = Path(tempfile.gettempdir()) / f"notify-bench-partitions-plans-{rows}.json"
        kept.write_text(json.dumps(plans_out, indent=1, default=str))
        (workdir / kept.name).write_text(kept.read_text())
        say(f"  plans (EXPLAIN ANALYZE JSON) written to {kept}")
        return run
    finally:
        engine.dispose()


# --- report --------------------------------------------------------------------------------


def report(small: SizeRun, big: SizeRun) -> None:
    """The table of both sizes, and one ``BENCH_ROW`` per function."""
    counting = ""
    if small.count_seconds is not None and big.count_seconds is not None:
        counting = f"; hours counted {small.count_seconds:.1f} s, {big.count_seconds:.1f} s"
    say()
    say(
        f"Results (code {code_fingerprint()}; notifications partitioned: "
        f"{'yes' if big.partitioned else 'no'}; load {small.rows:,} rows "
        f"{small.load_seconds:.0f} s, {big.rows:,} rows {big.load_seconds:.0f} s{counting}):"
    )
    say()
    say(
        f"| query | {small.rows:,}: median / p95 ms | {big.rows:,}: median / p95 ms | ratio "
        f"(medians) | within {GOAL_RATIO:g}x | indexes used ({small.rows:,} / {big.rows:,}) |"
    )
    say("| --- | ---: | ---: | ---: | --- | --- |")
    for name, at_big in big.results.items():
        at_small = small.results[name]
        ratio = at_big.median / at_small.median if at_small.median else None
        within = ratio is not None and ratio <= GOAL_RATIO
        small_ok, big_ok = at_small.plans.indexes_used, at_big.plans.indexes_used
        say(
            f"| {name} | {at_small.median:.2f} / {at_small.p95:.2f} | {at_big.median:.2f} / "
            f"{at_big.p95:.2f} | {'' if ratio is None else f'{ratio:.2f}x'} | "
            f"{'yes' if within else '**no**'} | {'yes' if small_ok else '**no**'} / "
            f"{'yes' if big_ok else '**no**'} |"
        )
    say()
    for name, at_big in big.results.items():
        at_small = small.results[name]
        ratio = at_big.median / at_small.median if at_small.median else None
        used = at_big.plans.indexes_used  # at the small size a tiny partition may be scanned
        report_row(
            f"notifications at {big.rows:,} rows: {name}",
            f"median {at_big.median:.2f} ms (p95 {at_big.p95:.2f}) at {big.rows:,} rows; "
            f"indexes used: {'yes' if used else 'no'}",
            f"median {at_small.median:.2f} ms (p95 {at_small.p95:.2f}) at {small.rows:,} rows",
            ratio,
            f"<= {GOAL_RATIO:g}x of {small.rows:,}, indexes used",
            ratio is not None and ratio <= GOAL_RATIO and used,
        )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.partitions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="notifications, big size")
    parser.add_argument("--small-rows", type=int, default=100_000, help="the baseline's size")
    parser.add_argument("--months", type=int, default=12, help="months the rows span")
    parser.add_argument("--repeat", type=int, default=50, help="timed runs of each function")
    args = parser.parse_args(argv)
    if args.rows < 2 or args.small_rows < 2 or args.months < 1 or args.repeat < 1:
        parser.error("--rows and --small-rows at least 2, --months and --repeat at least 1")
    signal.signal(signal.SIGTERM, _interrupt)

    say(
        f"bench.partitions  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  python {sys.version.split()[0]}"
    )
    say(f"service code fingerprint {code_fingerprint()} (sha256 of notify/, templates/, worker.py)")
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-partitions-"))
    drops: list[Callable[[], None]] = []
    finished = False
    try:
        small = run_size(args.small_rows, args, drops, workdir)
        for drop in drops:
            drop()
        drops.clear()
        big = run_size(args.rows, args, drops, workdir)
        report(small, big)
        finished = True
        return 0
    finally:
        for drop in drops:
            drop()
        if finished:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")
        say("cleaned up: databases dropped")


if __name__ == "__main__":
    sys.exit(main())
