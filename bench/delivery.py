"""Delivery benchmark: notifications per second from the Redis queue into an SMTP sink.

*Ours*: N ``security_alert`` rows are stored ``queued`` in a fresh PostgreSQL database and one
``notify.send_notification`` task per row is published to Redis db 12; then
``celery -A worker worker --pool prefork --concurrency 2`` starts and sends them (claim, render,
MIME, one reused SMTP connection per process, mark sent). The clock runs from the first row seen
``sent`` to the last.

*Baseline* (``bench/naive_worker.py``): one Celery task per email that renders with plain Jinja2
and ``email.message.EmailMessage``, opens a new SMTP connection per email and counts itself with
a Redis ``INCR``; same sink, pool and concurrency. The clock runs from the first increment to N.

Runs alternate baseline, ours, baseline, ours (``--rounds``), because the machine is noisy.
The sink is Postfix's ``smtp-sink`` (installed with the ``postfix`` package if missing), else
aiosmtpd in a separate process.

    python -m bench.delivery [--count 3000] [--rounds 2] [--profile]
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.support import (
    BENCH_REDIS_URL,
    SECRET_KEYS,
    Child,
    CpuMeter,
    child_env,
    find_or_install,
    flush_redis,
    profile_summary,
    report_row,
    say,
    start_py_spy,
    stop_py_spy,
)

if TYPE_CHECKING:
    import psycopg

    from notify.config import Settings

GOAL_RATIO = 2.0
POLL_SECONDS = 0.2
STALL_SECONDS = 60.0  # no progress for this long ends a run as failed
PROFILE_RATE = 100


# --- the SMTP sink -------------------------------------------------------------------------


@dataclass
class Sink:
    name: str
    port: int
    child: Child

    def count(self) -> int:
        """Messages accepted so far (``mesg=N``, printed by ``smtp-sink -c`` and our fallback)."""
        found = re.findall(r"mesg=(\d+)", self.child.log_path.read_text(errors="replace"))
        return int(found[-1]) if found else 0


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_sink(workdir: Path) -> Sink:
    from tests.support.services import free_port

    port = free_port()
    path = find_or_install("smtp-sink", "postfix", extra_paths=["/usr/sbin/smtp-sink"])
    candidates: list[tuple[str, list[str]]] = []
    if path is not None:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []  # required when run as root
        candidates.append(("Postfix smtp-sink", [path, "-c", *user, f"127.0.0.1:{port}", "1000"]))
    else:
        say("smtp-sink is unavailable: falling back to aiosmtpd in a separate process")
    candidates.append(("aiosmtpd (separate process)", [sys.executable, "-m", "bench.aiosmtpd_sink",
                                                       str(port)]))  # fmt: skip
    for name, command in candidates:
        child = Child(name, command, None, workdir / f"sink-{port}.log").start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and child.alive() and not _listening(port):
            time.sleep(0.1)
        if child.alive() and _listening(port):
            return Sink(name, port, child)
        say(f"{name} did not start: {child.log_tail(500)}")
        child.stop(timeout=5)
    raise RuntimeError("no SMTP sink could be started")


# --- one timed run -------------------------------------------------------------------------


@dataclass
class RunResult:
    label: str
    count: int
    polled_rate: float  # (N - done at first sight) / (time all done - time first seen), 0.2 s polls
    exact_rate: float  # (N - 1) / (last completion - first completion), from recorded timestamps
    seconds: float
    failed: int
    received: int  # messages the sink counted during the run
    cpu: CpuMeter


def _wait_for_all(
    label: str,
    count: int,
    done: Callable[[], tuple[int, int]],
    worker: Child,
    cpu: CpuMeter,
) -> tuple[float, float]:
    """Poll ``done() -> (finished, failed)`` every 0.2 s; returns (polled rate, seconds).

    The CPU meter starts at the first poll that sees progress and stops when all are done.
    """
    first_at: float | None = None
    first_done = 0
    last_progress, last_done = time.monotonic(), 0
    while True:
        finished, _failed = done()
        now = time.monotonic()
        if finished and first_at is None:
            first_at, first_done = now, finished
            cpu.start()
        if finished >= count:
            cpu.stop()
            assert first_at is not None
            elapsed = now - first_at
            rate = (count - first_done) / elapsed if elapsed > 0 else float("nan")
            return rate, elapsed
        if finished != last_done:
            last_progress, last_done = now, finished
        elif now - last_progress > STALL_SECONDS:
            raise RuntimeError(
                f"{label}: no progress for {STALL_SECONDS:.0f}s at {finished}/{count}; worker log:"
                f"\n{worker.log_tail()}"
            )
        worker.check_alive()
        time.sleep(POLL_SECONDS)


def _celery_worker(app: str, queues: str, name: str, env: dict[str, str], workdir: Path) -> Child:
    command = [
        sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues, "--pool", "prefork",
        "--concurrency", "2", "--loglevel", "WARNING", "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
    ]  # fmt: skip
    return Child(f"celery worker ({name})", command, env, workdir / f"{name}.log").start()


@dataclass
class Services:
    database_url: str
    env: dict[str, str]
    sink: Sink
    workdir: Path


def settings_from(env: dict[str, str]) -> Settings:
    from notify.config import Settings

    return Settings(
        **{
            key.removeprefix("NOTIFY_").lower(): value
            for key, value in env.items()
            if key.startswith("NOTIFY_")
        }
    )


def store_queued(settings: Settings, admin: psycopg.Connection[Any], count: int) -> list[str]:
    """Empty the outbox, then store ``count`` queued security alerts for distinct users."""
    from notify.db import make_session_factory, open_database
    from notify.delivery import outbox
    from notify.message.templates import get_template

    admin.execute(
        "TRUNCATE notifications, notification_decisions, recipients RESTART IDENTITY CASCADE"
    )
    engine = open_database(settings)  # installs the data keys: addresses are encrypted at rest
    sessions = make_session_factory(engine)
    sample = dict(get_template("security_alert").sample)
    # outbox.submit gained arguments while these benchmarks were written; pass what it takes.
    extra = {
        name: getattr(settings, name)
        for name in inspect.signature(outbox.submit).parameters
        if name not in ("session", "api_key_id", "request", "max_data_bytes")
        and hasattr(settings, name)
    }
    ids: list[str] = []
    try:
        for start in range(0, count, 500):
            with sessions.begin() as session:
                for index in range(start, min(start + 500, count)):
                    request = outbox.NotificationRequest(
                        template="security_alert",
                        user_id=f"bench-user-{index}",
                        email=f"user{index}@example.com",
                        data=sample,
                    )
                    accepted = outbox.submit(
                        session, None, request, max_data_bytes=settings.max_data_bytes, **extra
                    )
                    ids.append(accepted.id)
    finally:
        engine.dispose()
    return ids


def publish_as_the_service_does(settings: Settings, ids: list[str], *, grouped: bool) -> int:
    """Publish the send tasks for ``ids`` as the web does (its publisher thread, groups of up to
    ``NOTIFY_SEND_BATCH_SIZE``), or one task per id as an earlier version did."""
    from notify.celery_app import create_celery
    from notify.delivery.enqueue import enqueue_send, enqueue_sends
    from notify.delivery.publisher import GroupPublisher

    celery = create_celery(settings)
    try:
        if not grouped:
            return sum(enqueue_send(celery, notification_id, "security") for notification_id in ids)
        published: list[int] = []

        def publish(items: Any) -> int:
            done = enqueue_sends(celery, items, batch_size=settings.send_batch_size)
            published.append(done)
            return done

        publisher = GroupPublisher(
            publish, batch_size=settings.send_batch_size, linger=settings.publish_linger_seconds
        )
        for notification_id in ids:
            publisher.submit(notification_id, "security")
        publisher.close(timeout=60)
        return sum(published)
    finally:
        celery.close()


def run_ours(
    services: Services, count: int, profile: bool, *, grouped: bool = True, label: str = ""
) -> RunResult:
    import psycopg

    flush_redis()
    settings = settings_from(services.env)
    admin = psycopg.connect(services.database_url, autocommit=True)
    try:
        ids = store_queued(settings, admin, count)
        published = publish_as_the_service_does(settings, ids, grouped=grouped)
        if published != count:
            raise RuntimeError(f"only {published} of {count} send tasks were published")

        def done() -> tuple[int, int]:
            rows = admin.execute(
                "SELECT status, count(*) FROM notifications GROUP BY status"
            ).fetchall()
            by_status = {status: int(number) for status, number in rows}
            failed = by_status.get("failed", 0)
            return by_status.get("sent", 0) + failed + by_status.get("suppressed", 0), failed

        received_before = services.sink.count()
        worker = _celery_worker("worker", "essential,bulk,periodic", "bench-ours", services.env,
                                services.workdir)  # fmt: skip
        spy = None
        raw = services.workdir / f"ours-profile-{uuid.uuid4().hex[:4]}.txt"
        if profile:
            time.sleep(3)  # the pool children exist before py-spy attaches (--subprocesses)
            spy = start_py_spy(worker.pid, 600, raw, subprocesses=True, mode="--idle",
                               rate=PROFILE_RATE)  # fmt: skip
        cpu = CpuMeter(
            groups={"celery worker (ours)": worker.pid, "smtp sink": services.sink.child.pid}
        )
        try:
            rate, seconds = _wait_for_all("ours", count, done, worker, cpu)
        finally:
            if spy is not None:
                stop_py_spy(spy)
            worker.stop()
        row = admin.execute(
            "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = "
            "'failed'), extract(epoch FROM max(sent_at) - min(sent_at)) FROM notifications"
        ).fetchone()
        assert row is not None
        sent, failed, span = int(row[0]), int(row[1]), float(row[2] or 0)
    finally:
        admin.close()
    result = RunResult(
        label=label or ("ours" if grouped else "ours 1/task"), count=count, polled_rate=rate,
        exact_rate=(sent - 1) / span if span > 0 else float("nan"), seconds=seconds,
        failed=failed, received=services.sink.count() - received_before, cpu=cpu,
    )  # fmt: skip
    if profile and raw.exists():
        print_profile(raw, count)
    return result


def run_baseline(services: Services, count: int) -> RunResult:
    import redis
    from celery import Celery

    from bench import naive_worker

    flush_redis()
    app = Celery("bench-publisher", broker=BENCH_REDIS_URL, set_as_current=False)
    app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    with app.producer_or_acquire() as producer:
        for index in range(count):
            app.send_task(
                naive_worker.TASK,
                args=[f"user{index}@example.com", "Ada", "New sign-in to your account"],
                queue=naive_worker.QUEUE,
                producer=producer,
            )
    app.close()
    client = redis.Redis.from_url(BENCH_REDIS_URL)
    try:

        def done() -> tuple[int, int]:
            return int(client.get(naive_worker.COUNTER_KEY) or 0), 0

        received_before = services.sink.count()
        worker = _celery_worker("bench.naive_worker", naive_worker.QUEUE, "bench-naive",
                                services.env, services.workdir)  # fmt: skip
        cpu = CpuMeter(
            groups={"celery worker (baseline)": worker.pid, "smtp sink": services.sink.child.pid}
        )
        try:
            rate, seconds = _wait_for_all("baseline", count, done, worker, cpu)
        finally:
            worker.stop()
        times = [float(value) for value in client.lrange(naive_worker.TIMES_KEY, 0, -1)]
    finally:
        client.close()
    span = max(times) - min(times) if len(times) > 1 else 0.0
    return RunResult(
        label="baseline", count=count, polled_rate=rate,
        exact_rate=(len(times) - 1) / span if span > 0 else float("nan"), seconds=seconds,
        failed=0, received=services.sink.count() - received_before, cpu=cpu,
    )  # fmt: skip


def _interesting(frame: str) -> bool:
    where = frame.rpartition(" (")[2]
    return where.startswith(("notify/", "smtplib", "email/", "jinja2/", "sqlalchemy/orm/session",
                             "psycopg/connection", "kombu/", "celery/app/trace", "billiard/pool",
                             "celery/concurrency", "socket"))  # fmt: skip


def print_profile(raw: Path, count: int) -> None:
    say()
    say("  py-spy --idle (wall time) of the two pool processes during the profiled run of ours;")
    say("  per message = samples / rate / messages, summed over both processes, so the total")
    say("  under the task is ~2 x (1 / rate) since two processes work at once:")
    for line in profile_summary(
        raw, inclusive_filter=_interesting, top=40, rate=PROFILE_RATE, units=count,
        unit="message", within="send_notification (notify/tasks.py)",
    ):  # fmt: skip
        say(line)
    kept = Path(tempfile.gettempdir()) / "notify-bench-delivery-profile.txt"
    shutil.copyfile(raw, kept)
    say(f"    collapsed stacks kept in {kept}")


def print_run(result: RunResult) -> None:
    say(
        f"  {result.label:<12}{result.count:>6}"
        f"{result.polled_rate:>12.0f}{result.exact_rate:>12.0f}"
        f"{result.seconds:>9.2f}{result.failed:>8}{result.received:>10}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.delivery", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=3000, help="notifications per run")
    parser.add_argument("--rounds", type=int, default=2, help="baseline+ours pairs (A B A B)")
    parser.add_argument(
        "--profile", action="store_true",
        help="afterwards, one more run of ours with py-spy on the pool processes",
    )  # fmt: skip
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="NOTIFY_X=V",
        help="a setting for ours (worker and publisher), e.g. NOTIFY_SEND_COMMIT_EVERY=1",
    )  # fmt: skip
    parser.add_argument(
        "--rabbitmq", action="store_true",
        help="in each round, one more run of ours on RabbitMQ (a vhost of its own on "
             "127.0.0.1:5672); the baseline stays on Redis",
    )  # fmt: skip
    parser.add_argument(
        "--single-id-tasks", action="store_true",
        help="afterwards, one more run of ours with one task per notification (the old publish)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from tests.support.services import create_postgres_database

    say(f"bench.delivery  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  python {sys.version.split()[0]}")
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-delivery-"))
    sink = start_sink(workdir)
    say(f"SMTP sink: {sink.name} on 127.0.0.1:{sink.port}")
    database_url, drop_database = create_postgres_database()
    finished = False
    cleanups: list[Callable[[], None]] = []
    try:
        from notify.migrate import upgrade

        upgrade(database_url)
        env = child_env(
            {
                "NOTIFY_DATABASE_URL": database_url,
                "NOTIFY_BROKER_URL": BENCH_REDIS_URL,
                "NOTIFY_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
                "NOTIFY_SECRET_KEYS": SECRET_KEYS,
                "BENCH_NAIVE_BROKER_URL": BENCH_REDIS_URL,
                "BENCH_NAIVE_REDIS_URL": BENCH_REDIS_URL,
                "BENCH_NAIVE_SMTP": f"127.0.0.1:{sink.port}",
                **dict(item.split("=", 1) for item in args.worker_env),
            }
        )
        services = Services(database_url, env, sink, workdir)
        say(f"{args.count} notifications per run; celery prefork, concurrency 2; Redis db 12; "
            f"database {database_url.rsplit('/', 1)[1]}")  # fmt: skip
        if args.worker_env:
            say(f"settings for ours: {' '.join(args.worker_env)}")
        say()
        say(f"  {'run':<12}{'count':>6}{'msg/s poll':>12}{'msg/s exact':>12}{'seconds':>9}"
            f"{'failed':>8}{'received':>10}")  # fmt: skip
        results: list[RunResult] = []
        runners: list[Callable[[], RunResult]] = [lambda: run_baseline(services, args.count),
                   lambda: run_ours(services, args.count, False)]  # fmt: skip
        if args.rabbitmq:
            from tests.support.rabbitmq import create_rabbitmq_vhost

            broker_url, delete_vhost = create_rabbitmq_vhost()
            cleanups.append(delete_vhost)
            on_rabbitmq = replace(services, env={**services.env, "NOTIFY_BROKER_URL": broker_url})
            say(f"ours on RabbitMQ: vhost {broker_url.rsplit('/', 1)[1]} (quorum queues)")
            runners.append(lambda: run_ours(on_rabbitmq, args.count, False, label="ours rabbit"))
        for _ in range(args.rounds):
            for runner in runners:
                result = runner()
                results.append(result)
                print_run(result)
        say()
        say("  msg/s poll: from the first 0.2 s poll that saw a message done to the one that saw")
        say("  all N; msg/s exact: (N-1) over first to last completion time (sent_at in the")
        say("  database for ours, a timestamp pushed by each baseline task)")
        shown = [
            "celery worker (ours)",
            "celery worker (baseline)",
            "smtp sink",
            "postgres",
            "redis-server",
            "beam.smp",  # RabbitMQ's Erlang VM
        ]
        for result in results[-len(runners) :]:
            say()
            say(f"  CPU during the last {result.label} run ({result.cpu.wall:.1f}s wall):")
            for line in result.cpu.table(result.count, "message", shown):
                say(line)
        ours = [result.exact_rate for result in results if result.label == "ours"]
        base = [result.exact_rate for result in results if result.label == "baseline"]
        say()
        for index, (mine, theirs) in enumerate(zip(ours, base, strict=True), start=1):
            say(f"  round {index}: ours {mine:.0f} msg/s, baseline {theirs:.0f} msg/s, "
                f"ours/baseline {mine / theirs:.2f}")  # fmt: skip
        ratio = (sum(ours) / len(ours)) / (sum(base) / len(base))
        failed = sum(result.failed for result in results if result.label == "ours")
        lost = sum(result.count - result.received for result in results)
        say(f"  mean: ours {sum(ours) / len(ours):.0f} msg/s, baseline "
            f"{sum(base) / len(base):.0f} msg/s, ratio {ratio:.2f}; failed rows (ours): {failed}; "
            f"messages the sink did not count: {lost}")  # fmt: skip
        say(f"  goal (ours >= {GOAL_RATIO:.0f}x baseline, 0 failed): "
            f"{'MET' if ratio >= GOAL_RATIO and failed == 0 else 'NOT MET'}")  # fmt: skip
        report_row(
            "transactional delivery, queue -> SMTP", f"{sum(ours) / len(ours):.0f} msg/s",
            f"naive Celery task {sum(base) / len(base):.0f} msg/s", ratio,
            f">= {GOAL_RATIO:g}x naive", ratio >= GOAL_RATIO and failed == 0 and lost == 0,
        )  # fmt: skip
        rabbit = [result.exact_rate for result in results if result.label == "ours rabbit"]
        if rabbit:
            mean_rabbit = sum(rabbit) / len(rabbit)
            rabbit_ratio = mean_rabbit / (sum(base) / len(base))
            rabbit_failed = sum(r.failed for r in results if r.label == "ours rabbit")
            say(f"  on RabbitMQ: ours {mean_rabbit:.0f} msg/s, {rabbit_ratio:.2f}x the baseline "
                f"(on Redis), {mean_rabbit / (sum(ours) / len(ours)):.2f}x ours on Redis; "
                f"failed rows: {rabbit_failed}")  # fmt: skip
            report_row(
                "transactional delivery on RabbitMQ", f"{mean_rabbit:.0f} msg/s",
                f"naive Celery task on Redis {sum(base) / len(base):.0f} msg/s", rabbit_ratio,
                f">= {GOAL_RATIO:g}x naive", rabbit_ratio >= GOAL_RATIO and rabbit_failed == 0,
            )  # fmt: skip
        if args.single_id_tasks:
            single = run_ours(services, args.count, False, grouped=False)
            print_run(single)
            mean_base = sum(base) / len(base)
            say(f"  (one task per notification: {single.exact_rate:.0f} msg/s, "
                f"{single.exact_rate / mean_base:.2f}x the baseline's mean)")  # fmt: skip
        if args.profile:
            profiled = run_ours(services, args.count, True)
            say(f"  (profiled run: {profiled.exact_rate:.0f} msg/s under py-spy)")
        finished = True
        return 0
    finally:
        sink.child.stop(timeout=10)
        flush_redis()
        drop_database()
        for cleanup in cleanups:
            cleanup()
        if finished:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")
        say("cleaned up: workers and sink stopped, database dropped, Redis db 12 flushed")


if __name__ == "__main__":
    sys.exit(main())
