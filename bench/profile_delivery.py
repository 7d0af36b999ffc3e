"""Where the time of one delivery goes, without Celery: both task bodies run in this process.

Same services as ``bench.delivery`` (fresh PostgreSQL database, the SMTP sink, Redis db 12).
For ours, ``notify.delivery.sending.deliver`` is called for each queued row with a
``WorkerContext`` as a pool process has (pooled engine, one reused SMTP connection); for the
baseline the body of ``bench.naive_send`` is called directly. Each gets an unprofiled pass
(wall and CPU per message, SQL statements and commits per message) and a cProfile pass
(cumulative time per message of the steps that matter). Comparing with ``bench.delivery``
shows what Celery itself costs.

    python -m bench.profile_delivery [--count 2000]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.delivery import Sink, settings_from, start_sink, store_queued
from bench.support import BENCH_REDIS_URL, SECRET_KEYS, CpuMeter, flush_redis, say

WARM_UP = 50

# (label, file suffix, function name): cumulative time per message is printed for each.
OURS_STEPS = [
    ("deliver (whole task body)", "notify/delivery/sending.py", "deliver"),
    ("  claim: UPDATE..RETURNING + recipient", "notify/delivery/outbox.py", "claim"),
    ("  why_blocked (send-time checks)", "notify/delivery/sending.py", "why_blocked"),
    ("    suppressions.lookup", "notify/people/suppressions.py", "lookup"),
    ("    preferences.subscribed_to", "notify/people/preferences.py", "subscribed_to"),
    ("  compose", "notify/message/composing.py", "compose"),
    ("    render (Jinja2)", "notify/message/rendering.py", "render"),
    ("    build_message (EmailMessage)", "notify/message/mime.py", "build_message"),
    ("      headers (EmailMessage.__setitem__)", "email/message.py", "__setitem__"),
    ("  transport.send", "notify/delivery/transport.py", "send"),
    ("    message flatten (as_bytes)", "email/generator.py", "flatten"),
    ("    SMTP round trips (sendmail)", "smtplib.py", "sendmail"),
    ("  mark_sent (UPDATE)", "notify/delivery/outbox.py", "mark_sent"),
    ("  transaction commits", "sqlalchemy/orm/session.py", "commit"),
    ("  waiting for PostgreSQL (psycopg wait)", "psycopg/connection.py", "wait"),
    ("  SQLAlchemy Session.execute", "sqlalchemy/orm/session.py", "execute"),
]
NAIVE_STEPS = [
    ("naive_send (whole task body)", "bench/naive_worker.py", "naive_send"),
    ("  Jinja2 render", "jinja2/environment.py", "render"),
    ("  EmailMessage.set_content (also in add_alternative)", "email/message.py", "set_content"),
    ("  EmailMessage.add_alternative", "email/message.py", "add_alternative"),
    ("  headers (EmailMessage.__setitem__)", "email/message.py", "__setitem__"),
    ("  SMTP connect + EHLO (new connection)", "smtplib.py", "__init__"),
    ("  send_message", "smtplib.py", "send_message"),
    ("    message flatten", "email/generator.py", "flatten"),
    ("  QUIT (SMTP.__exit__)", "smtplib.py", "__exit__"),
    ("  Redis INCR + RPUSH", "redis/client.py", "execute"),
]


@dataclass
class Pass:
    messages: int
    wall: float
    cpu: float
    statements: int
    commits: int
    meter: CpuMeter


def timed(label: str, items: list[Any], call: Callable[[Any], object], count_sql: bool) -> Pass:
    from sqlalchemy import Engine, event

    statements = commits = 0

    def on_statement(*_: Any) -> None:
        nonlocal statements
        statements += 1

    def on_commit(*_: Any) -> None:
        nonlocal commits
        commits += 1

    if count_sql:
        event.listen(Engine, "before_cursor_execute", on_statement)
        event.listen(Engine, "commit", on_commit)
    meter = CpuMeter(groups={label: os.getpgrp()})
    meter.start()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        for item in items:
            call(item)
    finally:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        meter.stop()
        if count_sql:
            event.remove(Engine, "before_cursor_execute", on_statement)
            event.remove(Engine, "commit", on_commit)
    return Pass(len(items), wall, cpu, statements, commits, meter)


def profiled(items: list[Any], call: Callable[[Any], object]) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    for item in items:
        call(item)
    profiler.disable()
    return pstats.Stats(profiler)


def step_lines(stats: pstats.Stats, steps: Iterable[tuple[str, str, str]], messages: int) -> None:
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = 0.0
    for (filename, _line, function), row in table.items():
        if filename.endswith(
            ("bench/naive_worker.py", "notify/delivery/sending.py")
        ) and function in (
            "deliver",
            "naive_send",
        ):
            total = max(total, row[3])
    for label, suffix, function in steps:
        cumulative = sum(
            row[3]
            for (filename, _line, name), row in table.items()
            if name == function and filename.endswith(suffix)
        )
        calls = sum(
            row[1]
            for (filename, _line, name), row in table.items()
            if name == function and filename.endswith(suffix)
        )
        share = 100 * cumulative / total if total else 0.0
        say(
            f"    {label:<52}{1000 * cumulative / messages:>8.3f} ms{share:>6.0f}%"
            f"{calls / messages:>7.1f} calls"
        )


def top_lines(stats: pstats.Stats, messages: int, top: int = 15) -> None:
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:top]
    say("    hottest functions by own time (tottime per message):")
    for (filename, line, function), row in rows:
        where = filename.split("site-packages/")[-1].split("/lib/python3.11/")[-1]
        say(f"      {1000 * row[2] / messages:7.3f} ms  {function} ({where}:{line})")


def report(label: str, result: Pass) -> None:
    per = 1000 / result.messages
    say(
        f"  {label}: {result.messages} messages in {result.wall:.2f}s = "
        f"{result.messages / result.wall:.0f}/s in one process; wall {result.wall * per:.3f} ms, "
        f"CPU of this process {result.cpu * per:.3f} ms per message"
    )
    postgres = result.meter.result.get("postgres", 0.0)
    sink = sum(seconds for name, seconds in result.meter.result.items() if "sink" in name)
    redis_cpu = result.meter.result.get("redis-server", 0.0)
    say(
        f"    other processes per message: postgres {postgres * per:.3f} ms, SMTP sink "
        f"{sink * per:.3f} ms, redis {redis_cpu * per:.3f} ms"
    )
    if result.statements:
        say(
            f"    SQL statements per message {result.statements / result.messages:.2f}, "
            f"commits per message {result.commits / result.messages:.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_delivery")
    parser.add_argument("--count", type=int, default=2000, help="messages per pass")
    args = parser.parse_args(argv)
    import psycopg

    from tests.support.services import create_postgres_database

    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-profile-"))
    sink: Sink = start_sink(workdir)
    say(f"SMTP sink: {sink.name} on 127.0.0.1:{sink.port}; {args.count} messages per pass")
    os.environ.update(
        BENCH_NAIVE_BROKER_URL=BENCH_REDIS_URL,
        BENCH_NAIVE_REDIS_URL=BENCH_REDIS_URL,
        BENCH_NAIVE_SMTP=f"127.0.0.1:{sink.port}",
    )
    database_url, drop_database = create_postgres_database()
    try:
        from notify.celery_app import WorkerContext
        from notify.delivery.outcomes import Result
        from notify.delivery.sending import deliver
        from notify.migrate import upgrade

        upgrade(database_url)
        flush_redis()
        settings = settings_from(
            {
                "NOTIFY_DATABASE_URL": database_url,
                "NOTIFY_BROKER_URL": BENCH_REDIS_URL,
                "NOTIFY_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
                "NOTIFY_SECRET_KEYS": SECRET_KEYS,
            }
        )
        with psycopg.connect(database_url, autocommit=True) as admin:
            ids = store_queued(settings, admin, WARM_UP + 2 * args.count)
        context = WorkerContext(settings)

        def ours(notification_id: str) -> None:
            outcome = deliver(
                context.sessions,
                context.transport,
                settings,
                notification_id,
                retry_delay=context.retry_delay,
            )
            if outcome.result is not Result.SENT:
                raise RuntimeError(f"{notification_id}: {outcome}")

        from bench import naive_worker

        def naive(index: int) -> None:
            naive_worker.naive_send(f"user{index}@example.com", "Ada", "New sign-in")

        say()
        say(
            "ours: notify.delivery.sending.deliver in this process"
            " (what one pool process does per task)"
        )
        for notification_id in ids[:WARM_UP]:
            ours(notification_id)
        report("unprofiled", timed("ours", ids[WARM_UP : WARM_UP + args.count], ours, True))
        stats = profiled(ids[WARM_UP + args.count :], ours)
        say("  under cProfile (inflates Python-heavy steps; compare shares, not totals):")
        say(f"    {'step':<52}{'per message':>11}{'share':>7}{'calls/msg':>12}")
        step_lines(stats, OURS_STEPS, args.count)
        top_lines(stats, args.count)

        say()
        say("baseline: the body of bench.naive_send in this process")
        for index in range(WARM_UP):
            naive(index)
        indexes = list(range(args.count))
        report("unprofiled", timed("baseline", indexes, naive, False))
        stats = profiled(indexes, naive)
        say("  under cProfile:")
        say(f"    {'step':<52}{'per message':>11}{'share':>7}{'calls/msg':>12}")
        step_lines(stats, NAIVE_STEPS, args.count)
        top_lines(stats, args.count)
        context.transport.close()
        return 0
    finally:
        sink.child.stop(timeout=10)
        flush_redis()
        drop_database()
        shutil.rmtree(workdir, ignore_errors=True)
        say("cleaned up: sink stopped, database dropped, Redis db 12 flushed")


if __name__ == "__main__":
    sys.exit(main())
