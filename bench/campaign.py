"""Campaign benchmark: a product update to N imported users, into a local SMTP sink.

*Ours*: a fresh PostgreSQL database gets N users (``notify.people.importing.import_users``, timed),
then one campaign of the ``product_update`` template with its sample data is created and
scheduled. ``celery -A worker worker -B -Q essential,bulk,periodic --pool prefork
--concurrency 2`` (beat embedded, ``NOTIFY_CAMPAIGN_DISPATCH_INTERVAL_SECONDS=1``) starts it,
plans it into batches and sends every message, each with its own unsubscribe link, over one SMTP
connection per pool process. The clock runs from the first message the sink accepted to the
last (the sink's own counter, polled every 0.1 s).

Baselines, same sink, same recipients, same run:

* *(a) ceiling*: one message per recipient pre-rendered by ``notify.message.composing.compose`` (so
  each carries its own unsubscribe URL) and flattened to bytes before the clock starts, then
  pushed with ``smtplib`` over one reused connection per process, as many processes as the
  worker's pool (2);
* *(b) naive*: one Celery task per email (``bench/naive_worker.py``, task
  ``bench.naive_send_update``): sign the link, render with plain Jinja2, ``EmailMessage``, a
  new SMTP connection per email; on a smaller count, since it is slow.

The worker's memory (VmRSS and Pss of the parent, pool children and embedded beat) is sampled
every 0.5 s. ``--scaling`` runs ours at 10,000 and 100,000 recipients and compares the time per
message; ``--memory`` runs ours at 1,000,000 and reports the peak.

    python -m bench.campaign [--count 100000] [--naive-count 5000] [--profile]
    python -m bench.campaign --scaling
    python -m bench.campaign --memory
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import smtplib
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from bench.delivery import Sink, start_sink
from bench.support import (
    BENCH_REDIS_URL,
    SECRET_KEYS,
    Child,
    CpuMeter,
    RssSampler,
    bench_engine,
    child_env,
    code_fingerprint,
    flush_redis,
    import_bench_users,
    report_row,
    say,
    settings_for,
    sink_count,
    start_py_spy,
    stop_py_spy,
)

GOAL_CEILING_SHARE = 0.5  # ours >= half of (a)
GOAL_NAIVE_RATIO = 6.0  # ours >= 6x (b)
GOAL_RSS_MB = 250  # worker peak at 1,000,000 recipients
GOAL_SCALING = 1.2  # time per message at 100,000 within 20% of that at 10,000
POLL_SECONDS = 0.1
FIRST_MESSAGE_TIMEOUT = 180.0  # worker start, dispatch and the first page planned
STALL_SECONDS = 60.0  # no message accepted for this long ends a run as failed
PROFILE_RATE = 100
CONCURRENCY = 2


@dataclass
class Run:
    label: str
    count: int
    rate: float  # accepted by the sink: (N - first seen) / (all seen - first seen), 0.1 s polls
    seconds: float  # from the first poll that saw a message to the one that saw all N
    received: int
    cpu: CpuMeter
    exact: float = float("nan")  # from the run's own timestamps (see ``exact_from``)
    exact_from: str = ""
    notes: list[str] = field(default_factory=list)
    ok: bool = True


@dataclass
class Database:
    url: str
    drop: Callable[[], None]
    import_seconds: float = 0.0
    imported: int = 0


def _autovacuum() -> str:
    import psycopg

    from tests.support.services import POSTGRES_ADMIN_URL

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        row = admin.execute("SHOW autovacuum").fetchone()
    return str(row[0]) if row else "?"


def new_database(count: int, env: dict[str, str], *, analyze: bool = False) -> Database:
    """A fresh, migrated database with ``count`` imported users; the import is timed.

    With ``analyze``, ``ANALYZE`` runs after the import (what autovacuum would do on its own
    within a minute or so; the service itself never analyzes)."""
    from notify.migrate import upgrade
    from tests.support.services import create_postgres_database

    url, drop = create_postgres_database()
    database = Database(url, drop)
    try:
        upgrade(url)
        seconds, imported = import_bench_users(
            settings_for({**env, "NOTIFY_DATABASE_URL": url}), count
        )
    except BaseException:
        drop()
        raise
    database.import_seconds, database.imported = seconds, imported
    say(
        f"  imported {imported:,} users in {seconds:.1f} s ({imported / seconds:,.0f} rows/s, "
        f"import_users with 5,000-row chunks) into {url.rsplit('/', 1)[1]}"
    )
    if analyze:
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            started = time.monotonic()
            connection.execute("ANALYZE")
        say(f"  ANALYZE after the import: {time.monotonic() - started:.1f} s (--analyze)")
    return database


def base_env(database_url: str, sink: Sink) -> dict[str, str]:
    return child_env(
        {
            "NOTIFY_DATABASE_URL": database_url,
            "NOTIFY_BROKER_URL": BENCH_REDIS_URL,
            "NOTIFY_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
            "NOTIFY_SECRET_KEYS": SECRET_KEYS,
            "NOTIFY_CAMPAIGN_DISPATCH_INTERVAL_SECONDS": "1",
            "BENCH_NAIVE_BROKER_URL": BENCH_REDIS_URL,
            "BENCH_NAIVE_REDIS_URL": BENCH_REDIS_URL,
            "BENCH_NAIVE_SMTP": f"127.0.0.1:{sink.port}",
            "BENCH_NAIVE_SECRET_KEY": SECRET_KEYS,
        }
    )


def watch_sink(
    label: str,
    sink: Sink,
    count: int,
    cpu: CpuMeter,
    alive: Callable[[], None],
    *,
    first_timeout: float = FIRST_MESSAGE_TIMEOUT,
    on_first: Callable[[], None] | None = None,
) -> tuple[float, float, float]:
    """Poll the sink's counter until it has counted ``count`` messages (every run has a fresh
    sink, so the counter starts at 0 even if the senders are already going).

    Returns (rate, seconds, monotonic time of the first poll that saw a message). The CPU
    meter runs from that first poll to the last.
    """
    before = 0
    started = time.monotonic()
    first_at: float | None = None
    first_seen = 0
    last_progress, last_seen = started, 0
    while True:
        seen = sink_count(sink.child.log_path) - before
        now = time.monotonic()
        if seen and first_at is None:
            first_at, first_seen = now, seen
            cpu.start()
            if on_first is not None:
                on_first()
        if seen >= count:
            cpu.stop()
            assert first_at is not None
            elapsed = now - first_at
            rate = (count - first_seen) / elapsed if elapsed > 0 else float("nan")
            return rate, elapsed, first_at
        if seen != last_seen:
            last_progress, last_seen = now, seen
        elif first_at is None and now - started > first_timeout:
            raise RuntimeError(f"{label}: no message reached the sink in {first_timeout:.0f}s")
        elif first_at is not None and now - last_progress > STALL_SECONDS:
            raise RuntimeError(f"{label}: stuck at {seen}/{count} for {STALL_SECONDS:.0f}s")
        alive()
        time.sleep(POLL_SECONDS)


# --- ours ------------------------------------------------------------------------------------


def _wait_for_worker(env: dict[str, str], worker: Child, timeout: float = 60) -> None:
    """Until the worker answers a broadcast ping (its pool is up and it consumes)."""
    from notify.celery_app import create_celery

    app = create_celery(settings_for(env))
    try:
        deadline = time.monotonic() + timeout
        while not app.control.ping(timeout=0.5):
            worker.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not answer a ping in {timeout:.0f}s")
    finally:
        app.close()


def _watchdog(worker: Child, every: float = 2.0, limit: int = 20) -> Callable[[], None]:
    """``worker.check_alive`` that also gives up when tasks keep failing (say the package is
    half-edited), instead of waiting for the stall timeout."""
    checked = [time.monotonic()]

    def check() -> None:
        worker.check_alive()
        if time.monotonic() - checked[0] < every:
            return
        checked[0] = time.monotonic()
        failures = [
            line for line in worker.log_path.read_text(errors="replace").splitlines()
            if "raised unexpected" in line
        ]  # fmt: skip
        if len(failures) >= limit:
            raise RuntimeError(f"{len(failures)} worker tasks failed; first: {failures[0][:400]}")

    return check


def diagnose(env: dict[str, str], worker: Child) -> None:
    """What the campaign, its batches, PostgreSQL, the queues and the worker were doing when a
    run of ours stopped making progress (printed before everything is torn down)."""
    import psycopg
    import redis

    from notify.celery_app import create_celery

    say("  diagnostics at the failure:")
    try:
        url = env["NOTIFY_DATABASE_URL"]
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as db:
            for title, sql in (
                ("campaigns", "SELECT id, status, planning_done, planned_through, "
                 "batches_planned, started_at, updated_at FROM campaigns"),
                ("batches by status", "SELECT status, count(*), min(updated_at), "
                 "max(updated_at), max(attempts) FROM campaign_batches GROUP BY status"),
                ("notifications by status",
                 "SELECT status, count(*) FROM notifications GROUP BY status"),
                ("sessions on this database", "SELECT pid, state, wait_event_type, "
                 "wait_event, now() - xact_start, left(query, 120) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND pid <> pg_backend_pid()"),
            ):  # fmt: skip
                say(f"    {title}:")
                for row in db.execute(sql).fetchall():
                    say(f"      {row}")
    except Exception as error:  # diagnostics must not hide the failure itself
        say(f"    database: {type(error).__name__}: {error}")
    try:
        client = redis.Redis.from_url(BENCH_REDIS_URL, socket_connect_timeout=3)
        lengths = {name: client.llen(name) for name in ("essential", "bulk", "periodic")}
        say(f"    Redis db 12: queue lengths {lengths}, unacked {client.hlen('unacked')}")
        client.close()
    except Exception as error:
        say(f"    redis: {type(error).__name__}: {error}")
    try:
        app = create_celery(settings_for(env))
        inspect = app.control.inspect(timeout=2)
        for kind, found in (("active", inspect.active()), ("reserved", inspect.reserved())):
            for name, tasks in (found or {}).items():
                brief = [(task.get("name"), task.get("args")) for task in tasks]
                say(f"    {kind} on {name}: {brief}")
        app.close()
    except Exception as error:
        say(f"    celery inspect: {type(error).__name__}: {error}")
    boring = ("[SQL", "[parameters", "(Background", " ", "-", "*")
    lines = [
        line for line in worker.log_path.read_text(errors="replace").splitlines()
        if line and not line.startswith(boring)
    ]  # fmt: skip
    say("    worker log, last lines:")
    for line in lines[-15:]:
        say(f"      {line[:300]}")


def _schedule_campaign(env: dict[str, str]) -> int:
    from notify.campaigns import lifecycle as campaigns
    from notify.db import make_session_factory
    from notify.message.templates import get_template

    settings = settings_for(env)
    engine = bench_engine(settings)
    try:
        with make_session_factory(engine).begin() as session:
            campaign = campaigns.create(
                session,
                campaigns.CampaignDraft(
                    name=f"bench {uuid.uuid4().hex[:6]}",
                    template="product_update",
                    data=dict(get_template("product_update").sample),
                ),
                created_by=None,
                max_data_bytes=settings.max_data_bytes,
            )
            campaigns.schedule(
                session,
                campaign.id,
                defaults=settings.default_subscriptions,
                default_timezone="UTC",
            )
            return int(campaign.id)
    finally:
        engine.dispose()


def _campaign_state(env: dict[str, str], campaign_id: int) -> tuple[str, dict[str, int], float]:
    """(status, counts by outcome from ``campaigns.progress``, seconds from first to last
    ``sent_at``)."""
    from sqlalchemy import func, select

    from notify.campaigns import lifecycle as campaigns
    from notify.db import make_session_factory
    from notify.models import Campaign, Notification

    engine = bench_engine(settings_for(env))
    try:
        with make_session_factory(engine)() as session:
            status = str(session.get_one(Campaign, campaign_id).status)
            counts = campaigns.progress(session, campaign_id).counts
            first, last = session.execute(
                select(func.min(Notification.sent_at), func.max(Notification.sent_at)).where(
                    Notification.campaign_id == campaign_id
                )
            ).one()
    finally:
        engine.dispose()
    span = (last - first).total_seconds() if first is not None and last is not None else 0.0
    return status, counts, span


def run_ours(
    database: Database,
    count: int,
    workdir: Path,
    *,
    batch_size: int | None,
    profile: bool,
    extra_env: dict[str, str] | None = None,
    loglevel: str = "WARNING",
    concurrency: int = CONCURRENCY,
) -> tuple[Run, RssSampler]:
    extra_env = extra_env or {}
    flush_redis()
    sink = start_sink(workdir)
    env = base_env(database.url, sink)
    if batch_size:
        env["NOTIFY_CAMPAIGN_BATCH_SIZE"] = str(batch_size)
    env.update(extra_env)
    tag = uuid.uuid4().hex[:6]
    command = [
        sys.executable, "-m", "celery", "-A", "worker", "worker", "-B",
        "-s", str(workdir / f"beat-schedule-{tag}"), "-Q", "essential,bulk,periodic",
        "--pool", "prefork", "--concurrency", str(concurrency), "--loglevel", loglevel,
        "-n", f"bench-campaign-{tag}@%h",
    ]  # fmt: skip
    worker = Child("celery worker -B (ours)", command, env, workdir / f"worker-{tag}.log")
    spies: list[Child] = []
    raw = workdir / f"ours-profile-{tag}.txt"
    rss = RssSampler(0)
    try:
        worker.start()
        rss = RssSampler(worker.pid).start()
        _wait_for_worker(env, worker)
        time.sleep(1.0)
        idle = RssSampler(worker.pid)
        idle.sample()
        spies: list[Child] = []

        def start_profile() -> None:
            # Only while messages flow: the shares below are of the sending window.
            started = start_py_spy(worker.pid, 3600, raw, subprocesses=True, mode="--idle",
                                   rate=PROFILE_RATE)  # fmt: skip
            spies.extend([started] if started is not None else [])

        cpu = CpuMeter(groups={"celery worker (ours)": worker.pid, "smtp sink": sink.child.pid})
        scheduled_at = time.monotonic()
        campaign_id = _schedule_campaign(env)
        try:
            rate, seconds, first_at = watch_sink(
                "ours", sink, count, cpu, _watchdog(worker),
                on_first=start_profile if profile else None,
            )  # fmt: skip
        except Exception:
            say(f"  ours failed; worker memory so far: {rss.summary()}")
            say(f"  sum of VmRSS/Pss over the worker's life: {rss.trend(7)}")
            diagnose(env, worker)
            raise
        done_at = time.monotonic()
        for spy in spies:
            stop_py_spy(spy)
        spies.clear()
        status, counts, span = "", {"sent": 0}, 0.0
        while time.monotonic() < done_at + 60:
            status, counts, span = _campaign_state(env, campaign_id)
            if status == "completed":
                break
            worker.check_alive()
            time.sleep(0.5)
        completed_at = time.monotonic()
    finally:
        for spy in spies:
            stop_py_spy(spy)
        rss.stop()
        worker.stop()
        sink.child.stop(timeout=10)
    received = sink_count(sink.child.log_path)
    sent = counts["sent"]
    run = Run(
        label="ours", count=count, rate=rate, seconds=seconds, received=received, cpu=cpu,
        exact=(sent - 1) / span if span > 0 else float("nan"),
        exact_from="(sent-1) / (max - min sent_at), recorded by the worker",
    )  # fmt: skip
    if extra_env or loglevel != "WARNING":
        run.notes.append(f"worker settings added: {extra_env}, log level {loglevel}")
    run.notes.append(f"worker memory before the campaign: {idle.summary(peak=False)}")
    run.notes.append(
        f"campaign {campaign_id}: {status}; outcomes {counts}; scheduled -> first message "
        f"{first_at - scheduled_at:.1f} s, first -> last {seconds:.1f} s, last -> completed "
        f"{completed_at - done_at:.1f} s (dispatch every 1 s)"
    )
    errors = [
        line for line in worker.log_path.read_text(errors="replace").splitlines()
        if "ERROR" in line or "Traceback" in line
    ]  # fmt: skip
    if errors:
        tasks = [line for line in errors if "raised unexpected" in line]
        run.notes.append(
            f"WARNING: the worker log has {len(errors)} error lines ({len(tasks)} failed tasks); "
            f"first: {(tasks or errors)[0][:300]}"
        )
    run.ok = status == "completed" and sent == count and received == count
    if profile and raw.exists():
        print_profile(raw, rate)
    return run, rss


# --- (a) the ceiling: pre-rendered messages, one reused connection per process ---------------


def _recipients(env: dict[str, str], count: int) -> list[tuple[int, str, str]]:
    """(id, public id, address) of the first ``count`` users, read through notify's models
    (the address column may be encrypted at rest)."""
    from sqlalchemy import select

    from notify.db import make_session_factory
    from notify.models import Recipient

    engine = bench_engine(settings_for(env))
    try:
        with make_session_factory(engine)() as session:
            rows = session.execute(
                select(Recipient.id, Recipient.public_id, Recipient.email)
                .order_by(Recipient.id)
                .limit(count)
            ).all()
    finally:
        engine.dispose()
    return [(int(row[0]), str(row[1]), str(row[2])) for row in rows]


def _pusher(
    index: int,
    share: list[tuple[int, str, str]],
    env: dict[str, str],
    port: int,
    barrier: Any,
    results: Any,
) -> None:
    """Render this share with notify's compose (not timed), then push it over one connection."""
    from notify.message.composing import compose
    from notify.message.jobs import Claimed
    from notify.message.mime import new_message_id
    from notify.message.templates import get_template

    settings = settings_for(env)
    sample = dict(get_template("product_update").sample)
    sender = parseaddr(settings.sender_for("product_updates"))[1]
    rendered_at = time.monotonic()
    messages: list[tuple[str, bytes]] = []
    for recipient_id, public_id, email in share:
        job = Claimed(
            id=f"ceiling-{recipient_id}", template="product_update", category="product_updates",
            data=sample, attempts=1, message_id=new_message_id(settings.sending_domain),
            email=email, recipient_id=recipient_id, recipient_public_id=public_id, locale="en",
            erased=False,
        )  # fmt: skip
        messages.append((email, compose(settings, job, now=datetime.now(UTC)).as_bytes()))
    render_seconds = time.monotonic() - rendered_at
    connection = smtplib.SMTP("127.0.0.1", port, timeout=30)
    connection.ehlo()
    barrier.wait()
    started = time.time()
    for email, data in messages:
        connection.sendmail(sender, [email], data)
    finished = time.time()
    connection.quit()
    results.put((index, len(messages), started, finished, render_seconds))


def run_ceiling(database: Database, count: int, workdir: Path) -> Run:
    sink = start_sink(workdir)
    env = base_env(database.url, sink)
    recipients = _recipients(env, count)
    # spawn, not fork: a forked child would inherit this process's kombu connections (kombu's
    # after-fork hook then blocks closing a Redis channel that another process still reads).
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(CONCURRENCY + 1)
    results = context.Queue()
    pushers = [
        context.Process(
            target=_pusher,
            args=(index, recipients[index::CONCURRENCY], env, sink.port, barrier, results),
            name=f"ceiling-pusher-{index}",
        )
        for index in range(CONCURRENCY)
    ]
    say(f"  (a) pre-rendering {len(recipients):,} messages in {CONCURRENCY} processes (not timed)")
    try:
        for pusher in pushers:
            pusher.start()
        barrier.wait(timeout=3600)
        cpu = CpuMeter(groups={"pushers (and this script)": _own_pgid(),
                               "smtp sink": sink.child.pid})  # fmt: skip

        def alive() -> None:
            for pusher in pushers:
                if pusher.exitcode not in (None, 0):
                    raise RuntimeError(f"{pusher.name} exited with {pusher.exitcode}")

        rate, seconds, _ = watch_sink("ceiling", sink, len(recipients), cpu, alive)
        reports = [results.get(timeout=60) for _ in pushers]
        for pusher in pushers:
            pusher.join(timeout=30)
    finally:
        for pusher in pushers:
            if pusher.is_alive():
                pusher.kill()
                pusher.join(timeout=5)
        sink.child.stop(timeout=10)
    pushed = sum(report[1] for report in reports)
    span = max(report[3] for report in reports) - min(report[2] for report in reports)
    run = Run(
        label="(a) ceiling", count=len(recipients), rate=rate, seconds=seconds,
        received=sink_count(sink.child.log_path), cpu=cpu,
        exact=pushed / span if span > 0 else float("nan"),
        exact_from="N / (last sendmail returned - first process started pushing)",
    )  # fmt: skip
    per_process = ", ".join(
        f"{report[1] / (report[3] - report[2]):,.0f}/s" for report in sorted(reports)
    )
    renders = ", ".join(f"{report[4]:.0f} s" for report in sorted(reports))
    run.notes.append(f"per pusher process: {per_process}; pre-rendering took {renders}")
    run.ok = run.received == len(recipients)
    return run


def _own_pgid() -> int:
    import os

    return os.getpgid(0)


# --- (b) the naive pipeline: a Celery task per email, a new connection each -----------------


def run_naive(database: Database, count: int, workdir: Path) -> Run:
    import redis
    from celery import Celery

    from bench import naive_worker
    from notify.message.templates import get_template

    flush_redis()
    sink = start_sink(workdir)
    env = base_env(database.url, sink)
    recipients = _recipients(env, count)
    sample = dict(get_template("product_update").sample)
    app = Celery("bench-publisher", broker=BENCH_REDIS_URL, set_as_current=False)
    app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    with app.producer_or_acquire() as producer:
        for _, public_id, email in recipients:
            app.send_task(
                naive_worker.UPDATE_TASK, args=[email, public_id, sample],
                queue=naive_worker.QUEUE, producer=producer,
            )  # fmt: skip
    app.close()
    command = [
        sys.executable, "-m", "celery", "-A", "bench.naive_worker", "worker", "-Q",
        naive_worker.QUEUE, "--pool", "prefork", "--concurrency", str(CONCURRENCY),
        "--loglevel", "WARNING", "-n", f"bench-naive-{uuid.uuid4().hex[:6]}@%h",
    ]  # fmt: skip
    worker = Child("celery worker (naive)", command, env, workdir / "naive.log")
    client = redis.Redis.from_url(BENCH_REDIS_URL)
    try:
        worker.start()
        cpu = CpuMeter(groups={"celery worker (naive)": worker.pid, "smtp sink": sink.child.pid})
        rate, seconds, _ = watch_sink("naive", sink, len(recipients), cpu, worker.check_alive)
        times = [float(value) for value in client.lrange(naive_worker.TIMES_KEY, 0, -1)]
    finally:
        client.close()
        worker.stop()
        sink.child.stop(timeout=10)
    span = max(times) - min(times) if len(times) > 1 else 0.0
    run = Run(
        label="(b) naive", count=len(recipients), rate=rate, seconds=seconds,
        received=sink_count(sink.child.log_path), cpu=cpu,
        exact=(len(times) - 1) / span if span > 0 else float("nan"),
        exact_from="(N-1) / (last - first timestamp pushed by the tasks)",
    )  # fmt: skip
    run.ok = run.received == len(recipients) and len(times) == len(recipients)
    return run


# --- output ----------------------------------------------------------------------------------

SHOWN = [
    "celery worker (ours)", "celery worker (naive)", "pushers (and this script)", "smtp sink",
    "postgres", "redis-server",
]  # fmt: skip


def print_runs(runs: list[Run], sink_name: str) -> None:
    say()
    say(f"  sink: {sink_name}; msg/s = accepted by the sink, first to last (its counter polled "
        f"every {POLL_SECONDS:g} s)")  # fmt: skip
    say("  check: OK when every recipient was sent once, the sink received N and (ours) the")
    say("  campaign ended completed")
    say(f"  {'run':<13}{'messages':>10}{'msg/s':>9}{'seconds':>9}{'received':>10}"
        f"{'check':>7}   msg/s from the run's own timestamps")  # fmt: skip
    for run in runs:
        say(
            f"  {run.label:<13}{run.count:>10,}{run.rate:>9,.0f}{run.seconds:>9.1f}"
            f"{run.received:>10,}{'OK' if run.ok else 'FAIL':>7}   {run.exact:,.0f} "
            f"({run.exact_from})"
        )
    for run in runs:
        for note in run.notes:
            say(f"    {run.label}: {note}")
    for run in runs:
        say()
        say(f"  CPU during {run.label} ({run.cpu.wall:.1f} s wall, first to last message):")
        for line in run.cpu.table(run.count, "message", SHOWN):
            say(line)


def _interesting(frame: str) -> bool:
    where = frame.rpartition(" (")[2]
    return where.startswith(("notify/", "smtplib", ".11/smtplib", "email/", ".11/email/",
                             "jinja2/", "itsdangerous/", "sqlalchemy/orm/session",
                             "sqlalchemy/engine/base", "sqlalchemy/pool/", "psycopg/connection",
                             "psycopg/cursor", "celery/app/trace", "billiard/pool",
                             ".11/socket", "socket"))  # fmt: skip


# Where a message's time goes, as (label, test on one frame ``Function (file)``); a sample
# counts for a step when any frame of its stack passes the test. Tests use the last part of a
# function's name and the end of its file, so they survive class and helper renames.
def _frame(function: str | tuple[str, ...], file_end: str) -> Callable[[str, str], bool]:
    names = (function,) if isinstance(function, str) else function
    return lambda name, where: name.rsplit(".", 1)[-1] in names and where.endswith(file_end)


def _file(*file_parts: str) -> Callable[[str, str], bool]:
    return lambda name, where: any(part in where for part in file_parts)


STEPS: list[tuple[str, Callable[[str, str], bool]]] = [
    ("send_batch (all of it)", _frame("send_batch", "notify/campaigns/batches.py")),
    ("  database: any SQLAlchemy or psycopg frame", _file("sqlalchemy/", "psycopg/")),
    ("    of which waiting for PostgreSQL (psycopg wait)", _frame("wait", "psycopg/connection.py")),
    ("    of which COMMIT", _frame("commit", "psycopg/connection.py")),
    ("    of which pool checkout / pre-ping", _frame(("_checkout", "do_ping"), "")),
    ("  building the message (notify/message: composing, mime, rendering)",
     _file("notify/message/composing.py", "notify/message/mime.py", "notify/message/rendering.py")),
    ("    of which signing links (notify/message/links.py)", _file("notify/message/links.py")),
    ("    of which Jinja2 render (notify/message/rendering.py render)",
     _frame("render", "notify/message/rendering.py")),
    ("    of which build_message (MIME headers and parts)",
     _frame("build_message", "notify/message/mime.py")),
    ("  SMTP: transport.send (notify/delivery/transport.py)",
     _file("notify/delivery/transport.py")),
    ("    of which flattening the message (email/generator.py)", _file("email/generator.py")),
    ("    of which waiting for the sink's replies (smtplib getreply)",
     _frame("getreply", "smtplib.py")),
    ("    of which writing to the socket (smtplib send)", _frame("send", "smtplib.py")),
]  # fmt: skip


def print_profile(raw: Path, rate: float) -> None:
    """Per message: how the pool processes spent their wall time while messages flowed, and
    the steps of ``send_batch``. A share of the pool's samples becomes ms per message through
    the run's rate: the pool has ``CONCURRENCY`` x 1000 / rate ms of wall time per message."""
    from bench.support import _frame_name, profile_summary

    by_process: dict[str, dict[str, int]] = {}
    steps = [0] * len(STEPS)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        samples = int(count_text)
        parts = stack.split(";")
        # with --subprocesses a stack starts with the chain of processes: keep the innermost
        process = next((part for part in reversed(parts) if part.startswith("process ")), "?")
        kept = [part for part in parts if not part.startswith(("process ", "thread "))]
        frames = [_frame_name(part) for part in kept]
        buckets = by_process.setdefault(process.split(":")[0], {})
        split = [(name, where.rstrip(")")) for name, _, where in
                 (frame.partition(" (") for frame in frames)]  # fmt: skip
        names = {name.rsplit(".", 1)[-1] for name, _ in split}
        if "send_batch" in names:
            bucket = "send_batch"
            for index, (_, test) in enumerate(STEPS):
                if any(test(name, where) for name, where in split):
                    steps[index] += samples
        elif "plan_campaign" in names:
            bucket = "plan_campaign"
        elif "dispatch_due_campaigns" in names:
            bucket = "dispatch_due_campaigns"
        elif "trace_task" in names or "fast_trace_task" in names:
            bucket = "other task code (Celery trace, ack)"
        else:
            bucket = "outside tasks (waiting for the next task, Celery)"
        buckets[bucket] = buckets.get(bucket, 0) + samples
    pool = {name: buckets for name, buckets in by_process.items() if "send_batch" in buckets}
    totals: dict[str, int] = {}
    for buckets in pool.values():
        for bucket, samples in buckets.items():
            totals[bucket] = totals.get(bucket, 0) + samples
    everything = sum(totals.values()) or 1
    budget = CONCURRENCY * 1000 / rate  # pool wall ms per message
    per = budget / everything
    messages = round(everything / PROFILE_RATE / CONCURRENCY * rate)
    say()
    say(
        f"  py-spy --idle (wall time, {PROFILE_RATE} samples/s) of the {len(pool)} pool processes "
        f"from the first message to the last ({everything} samples, ~{messages:,} messages);"
    )
    say(f"  at {rate:,.0f} msg/s the pool has {budget:.3f} ms of process wall time per message"
        f" ({CONCURRENCY} processes x {1000 / rate:.3f} ms). Shares of it:")  # fmt: skip
    for bucket, samples in sorted(totals.items(), key=lambda item: -item[1]):
        say(f"    {100 * samples / everything:5.1f}%  {samples * per:7.3f} ms  {bucket}")
    say("  inside send_batch (inclusive; sub-steps overlap their parents):")
    base = steps[0] or 1
    for (label, _), samples in zip(STEPS, steps, strict=True):
        say(f"    {100 * samples / base:5.1f}%  {samples * per:7.3f} ms  {label}")
    say("  top frames under send_batch:")
    for line in profile_summary(raw, inclusive_filter=_interesting, top=40, rate=PROFILE_RATE,
                                units=messages, unit="message",
                                within="send_batch (notify/campaigns/batches.py)"):  # fmt: skip
        say(line)
    kept = Path(tempfile.gettempdir()) / "notify-bench-campaign-profile.txt"
    shutil.copyfile(raw, kept)
    say(f"    collapsed stacks kept in {kept}")


# --- main ------------------------------------------------------------------------------------


def ours_in_fresh_database(
    count: int, workdir: Path, args: argparse.Namespace, *, profile: bool = False
) -> tuple[Run, RssSampler, Database]:
    database = new_database(
        count, child_env({"NOTIFY_SECRET_KEYS": SECRET_KEYS}), analyze=args.analyze
    )
    try:
        extra = dict(item.split("=", 1) for item in args.worker_env)
        run, rss = run_ours(
            database, count, workdir, batch_size=args.batch_size, profile=profile,
            extra_env=extra, loglevel=args.worker_loglevel, concurrency=args.ours_concurrency,
        )  # fmt: skip
    except BaseException:
        database.drop()
        raise
    return run, rss, database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.campaign", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--count", type=int, default=100_000, help="recipients of ours and (a); 0: no comparison"
    )
    parser.add_argument("--naive-count", type=int, default=5000, help="messages of (b)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="NOTIFY_CAMPAIGN_BATCH_SIZE (default: the service's, 500)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="ours only")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NOTIFY_X=VALUE",
        help="one more setting for the worker of ours (repeatable)",
    )
    parser.add_argument("--worker-loglevel", default="WARNING", help="the worker of ours")
    parser.add_argument(
        "--ours-concurrency", type=int, default=CONCURRENCY,
        help=f"pool processes of ours (default {CONCURRENCY}, as the baselines have)",
    )  # fmt: skip
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="ANALYZE the fresh database after the import (autovacuum may be off)",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="ours at 10,000 and 100,000: time per message at each",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="ours at 1,000,000 (or --memory-count): the worker's peak memory",
    )
    parser.add_argument("--memory-count", type=int, default=1_000_000)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, one more run of ours under py-spy (--profile-count)",
    )
    parser.add_argument("--profile-count", type=int, default=20_000)
    args = parser.parse_args(argv)  # fmt: skip

    say(f"bench.campaign  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  python {sys.version.split()[0]}")
    say(f"service code fingerprint {code_fingerprint()} (sha256 of notify/, templates/, worker.py)")
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-campaign-"))
    finished = False
    databases: list[Database] = []
    try:
        probe = start_sink(workdir)  # installs smtp-sink if needed; says if it falls back
        sink_name = probe.name
        probe.child.stop(timeout=5)
        autovacuum = _autovacuum()
        say(f"PostgreSQL autovacuum: {autovacuum}; ANALYZE after each import: "
            f"{'yes' if args.analyze else 'no (--analyze to add it)'}")  # fmt: skip
        if autovacuum != "on" and not args.analyze:
            say("  warning: with autovacuum off the fresh tables never get statistics, so the "
                "planner guesses (see bench/README.md)")  # fmt: skip
        say(f"SMTP sink: {sink_name} (a fresh one per run); worker: prefork, concurrency "
            f"{CONCURRENCY}, beat embedded (-B), dispatch every 1 s; Redis db 12")  # fmt: skip
        if args.scaling:
            scaling(workdir, args, databases, sink_name)
        if args.memory:
            memory(workdir, args, databases, sink_name)
        if not (args.scaling or args.memory) and args.count > 0:
            comparison(workdir, args, databases, sink_name)
        if args.profile:
            say()
            say(f"profiled run of ours, {args.profile_count:,} recipients:")
            run, _, database = ours_in_fresh_database(
                args.profile_count, workdir, args, profile=True
            )
            databases.append(database)
            say(f"  (profiled run: {run.rate:,.0f} msg/s under py-spy; checks "
                f"{'OK' if run.ok else 'FAILED'})")  # fmt: skip
        finished = True
        return 0
    finally:
        for database in databases:
            database.drop()
        flush_redis()
        if finished:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")
        say("cleaned up: worker and sinks stopped, databases dropped, Redis db 12 flushed")


def comparison(
    workdir: Path, args: argparse.Namespace, databases: list[Database], sink_name: str
) -> None:
    say()
    say(f"ours: {args.count:,} recipients")
    run, rss, database = ours_in_fresh_database(args.count, workdir, args)
    databases.append(database)
    say(f"  ours: {run.rate:,.0f} msg/s; worker memory: {rss.summary()}")
    runs = [run]
    if not args.no_baselines:
        say(f"(a) ceiling: {args.count:,} pre-rendered messages, {CONCURRENCY} processes")
        runs.append(run_ceiling(database, args.count, workdir))
        say(f"  (a): {runs[-1].rate:,.0f} msg/s")
        naive = min(args.naive_count, args.count)
        say(f"(b) naive: {naive:,} messages, one Celery task and SMTP connection each")
        runs.append(run_naive(database, naive, workdir))
        say(f"  (b): {runs[-1].rate:,.0f} msg/s")
    print_runs(runs, sink_name)
    say()
    say(f"  import: {database.imported:,} users in {database.import_seconds:.1f} s "
        f"({database.imported / database.import_seconds:,.0f}/s)")  # fmt: skip
    say(f"  worker memory during ours: {rss.summary()}")
    if len(runs) == 3:
        ours, ceiling, naive_run = runs
        share, ratio = ours.rate / ceiling.rate, ours.rate / naive_run.rate
        say(f"  ours {ours.rate:,.0f} msg/s; (a) ceiling {ceiling.rate:,.0f} msg/s "
            f"({ceiling.rate / CONCURRENCY:,.0f} per process); (b) naive "
            f"{naive_run.rate:,.0f} msg/s")  # fmt: skip
        say(f"  ours/(a) = {share:.2f} (goal >= {GOAL_CEILING_SHARE}); ours/(b) = {ratio:.1f}x "
            f"(goal >= {GOAL_NAIVE_RATIO:g}x)")  # fmt: skip
        met = (
            share >= GOAL_CEILING_SHARE
            and ratio >= GOAL_NAIVE_RATIO
            and all(run.ok for run in runs)
        )
        say(f"  throughput goals: {'MET' if met else 'NOT MET'}")
        ok = all(run.ok for run in runs)
        report_row(
            f"campaign, {args.count:,} recipients, against the ceiling",
            f"{ours.rate:,.0f} msg/s", f"(a) ceiling {ceiling.rate:,.0f} msg/s", share,
            f">= {GOAL_CEILING_SHARE}x ceiling", share >= GOAL_CEILING_SHARE and ok,
        )  # fmt: skip
        report_row(
            f"campaign, {args.count:,} recipients, against naive",
            f"{ours.rate:,.0f} msg/s", f"(b) naive {naive_run.rate:,.0f} msg/s", ratio,
            f">= {GOAL_NAIVE_RATIO:g}x naive", ratio >= GOAL_NAIVE_RATIO and ok,
        )  # fmt: skip


def scaling(
    workdir: Path, args: argparse.Namespace, databases: list[Database], sink_name: str
) -> None:
    results: list[tuple[int, Run]] = []
    for count in (10_000, 100_000):
        say()
        say(f"ours: {count:,} recipients")
        run, rss, database = ours_in_fresh_database(count, workdir, args)
        databases.append(database)
        results.append((count, run))
        say(f"  ours: {run.rate:,.0f} msg/s; worker memory: {rss.summary()}")
    print_runs([run for _, run in results], sink_name)
    say()
    per = [1000 / run.rate for _, run in results]
    for (count, run), ms in zip(results, per, strict=True):
        say(f"  {count:>9,} recipients: {ms:.3f} ms per message ({run.rate:,.0f}/s, "
            f"{'OK' if run.ok else 'FAILED'})")  # fmt: skip
    ratio = per[1] / per[0]
    say(f"  time per message at 100,000 / at 10,000 = {ratio:.2f} (goal <= {GOAL_SCALING}): "
        f"{'MET' if ratio <= GOAL_SCALING else 'NOT MET'}")  # fmt: skip


def memory(
    workdir: Path, args: argparse.Namespace, databases: list[Database], sink_name: str
) -> None:
    say()
    say(f"ours: {args.memory_count:,} recipients (memory)")
    run, rss, database = ours_in_fresh_database(args.memory_count, workdir, args)
    databases.append(database)
    print_runs([run], sink_name)
    say()
    say(f"  import: {database.imported:,} users in {database.import_seconds:.1f} s")
    say(f"  worker memory: {rss.summary()}")
    say(f"  sum of VmRSS/Pss over the worker's life: {rss.trend(7)}")
    peak_mb = rss.peak_rss_kb / 1024
    largest_mb = rss.peak_single_kb / 1024
    report_row(
        f"campaign worker memory, {args.memory_count:,} recipients",
        f"largest process {largest_mb:.0f} MB",
        f"all processes summed, RSS/PSS over the run: {rss.trend(3)}", None,
        f"each process < {GOAL_RSS_MB} MB, flat", largest_mb < GOAL_RSS_MB and run.ok,
    )  # fmt: skip
    say(f"  goal (worker peak RSS < {GOAL_RSS_MB} MB at {args.memory_count:,}): "
        f"{'MET' if peak_mb < GOAL_RSS_MB else 'NOT MET'} by the sum of VmRSS ({peak_mb:.0f} MB;"
        f" Pss {rss.peak_pss_kb / 1024:.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
