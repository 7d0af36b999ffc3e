"""Security-alert latency: from ``POST /v1/notifications`` to the SMTP server's acceptance, at a
steady offered rate, alone and while a large campaign is sending.

The whole service runs as docker-compose.yml lays it out, on one machine: ``notify web
--workers 2``, one worker for the ``essential`` lane and one for ``bulk`` and ``periodic`` with
beat (2 pool processes each; the bulk one at ``NOTIFY_WORKER_NICENESS=10``, as compose gives
it a quarter of the CPU weight), PostgreSQL, Redis db 12 and Postfix's ``smtp-sink``. wrk offers
``--rate`` alerts a second (each of 32 connections pacing its requests with jitter, every
request a new person) for ``--duration`` seconds. Each alert's latency is its row's ``sent_at``
(the time the relay accepted it) minus its ``created_at`` (taken when the request is accepted,
before its commit); the figures are percentiles over every alert of the window, all of which
must end ``sent``.

Then a campaign to ``--campaign-count`` people is scheduled; once it is sending, the same alert
load runs again. The campaign's own progress during that window is printed, to show it was
sending throughout.

    python -m bench.latency [--rate 100] [--duration 20] [--campaign-count 100000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.api import lua_script, run_wrk
from bench.campaign import (
    _campaign_state,
    _schedule_campaign,
    _wait_for_worker,
    base_env,
    new_database,
)
from bench.delivery import start_sink
from bench.support import (
    SECRET_KEYS,
    Child,
    child_env,
    find_or_install,
    flush_redis,
    pacing_delay_ms,
    report_row,
    say,
    venv_tool,
    wait_for,
)

GOAL_STEADY_P99_S = 1.0
GOAL_DURING_CAMPAIGN_P99_S = 2.0
CONNECTIONS = 32
SETTLE_SECONDS = 120.0  # every alert of a window must end within this after the window


@dataclass
class Window:
    label: str
    offered: float
    achieved: float
    count: int
    sent: int
    p50: float
    p99: float
    worst: float
    waits: list[float]  # created -> claimed by a worker, sorted
    sends: list[float]  # claimed -> accepted by the relay, sorted


@dataclass
class Alerts:
    """The alerts created in a window: how many, and for those sent, their latencies in
    seconds (sorted) whole and split at the worker's claim."""

    count: int
    latencies: list[float]
    waits: list[float]
    sends: list[float]


def _alerts(database_url: str, started: datetime, ended: datetime) -> Alerts:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT status::text, extract(epoch FROM sent_at - created_at),"
            " extract(epoch FROM claimed_at - created_at),"
            " extract(epoch FROM sent_at - claimed_at) FROM notifications "
            "WHERE category = 'security' AND created_at >= %s AND created_at <= %s",
            (started, ended),
        ).fetchall()
    sent = [row for row in rows if row[0] == "sent"]
    return Alerts(
        len(rows),
        sorted(float(row[1]) for row in sent),
        sorted(float(row[2]) for row in sent),
        sorted(float(row[3]) for row in sent),
    )


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(share * len(values)))]


def alert_window(
    label: str, rate: float, duration: float, base: str, api_key: str, env: dict[str, str],
    web: Child, workdir: Path, wrk: str,
) -> Window:  # fmt: skip
    database_url = env["NOTIFY_DATABASE_URL"]
    script = workdir / f"alerts-{uuid.uuid4().hex[:6]}.lua"
    delay = pacing_delay_ms(rate, CONNECTIONS)
    script.write_text(
        lua_script("POST", "/v1/notifications", uuid.uuid4().hex[:10], api_key, delay)
    )
    started = datetime.now(UTC)
    result = run_wrk(
        wrk, label, f"{base}/v1/notifications", script, duration=duration,
        connections=CONNECTIONS, threads=2, web=web, workdir=workdir,
    )  # fmt: skip
    ended = datetime.now(UTC)

    def settled() -> bool:
        alerts = _alerts(database_url, started, ended)
        return alerts.count > 0 and len(alerts.latencies) == alerts.count

    wait_for(settled, SETTLE_SECONDS, f"every alert of '{label}' to be sent", 0.5)
    alerts = _alerts(database_url, started, ended)
    latencies = alerts.latencies
    return Window(
        label, rate, result.rps, alerts.count, len(latencies), _percentile(latencies, 0.5),
        _percentile(latencies, 0.99), latencies[-1] if latencies else float("nan"),
        alerts.waits, alerts.sends,
    )  # fmt: skip


def _say_window(window: Window) -> None:
    say(
        f"  {window.label}: offered {window.offered:.0f}/s, achieved {window.achieved:.0f}/s; "
        f"{window.sent:,} of {window.count:,} alerts sent; POST -> SMTP p50 "
        f"{window.p50 * 1000:.0f} ms, p99 {window.p99 * 1000:.0f} ms, worst "
        f"{window.worst * 1000:.0f} ms"
    )
    for part, values in (("waiting to be claimed", window.waits), ("claim -> SMTP", window.sends)):
        say(
            f"    of which {part}: p50 {_percentile(values, 0.5) * 1000:.0f} ms, p99 "
            f"{_percentile(values, 0.99) * 1000:.0f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="alerts offered a second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per window")
    parser.add_argument("--campaign-count", type=int, default=100_000)
    parser.add_argument(
        "--env", action="append", default=[], metavar="NOTIFY_X=V",
        help="a setting for the web and both workers (repeatable), for experiments",
    )  # fmt: skip
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.env)

    from tests.support.services import free_port

    say(f"bench.latency  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  python {sys.version.split()[0]}")
    wrk = find_or_install("wrk", "wrk")
    if wrk is None:
        say("wrk is not available and could not be installed; nothing measured")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-latency-"))
    flush_redis()
    sink = start_sink(workdir)
    children: list[Child] = [sink.child]
    database = None
    finished = False
    try:
        say(f"importing {args.campaign_count:,} people for the campaign")
        database = new_database(args.campaign_count, child_env({"NOTIFY_SECRET_KEYS": SECRET_KEYS}))
        env = {**base_env(database.url, sink), **settings}
        if settings:
            say(f"settings for the web and the workers: {settings}")
        from notify.db import make_engine, make_session_factory
        from notify.producers.api_keys import create_key

        engine = make_engine(database.url)
        with make_session_factory(engine).begin() as session:
            _, api_key = create_key(session, "bench", ["notifications:send"])
        engine.dispose()

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        web = Child(
            "notify web",
            [venv_tool("notify"), "web", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2"],
            env, workdir / "web.log",
        ).start()  # fmt: skip
        children.append(web)
        # The production layout (docker-compose.yml): a worker per lane, so a campaign batch
        # never holds the process an alert needs. Both run on this one machine; the bulk one
        # at niceness 10, as compose gives it a quarter of the CPU weight.
        workers = {
            lane: Child(
                f"celery worker ({lane})",
                [sys.executable, "-m", "celery", "-A", "worker", "worker", *extra, "-Q", queues,
                 "--pool", "prefork", "--concurrency", "2", "--loglevel", "WARNING",
                 "-n", f"bench-latency-{lane}-{uuid.uuid4().hex[:6]}@%h"],
                {**env, **lane_env}, workdir / f"worker-{lane}.log",
            ).start()
            for lane, queues, extra, lane_env in (
                ("essential", "essential", [], {}),
                ("bulk", "bulk,periodic", ["-B", "-s", str(workdir / "beat-schedule")],
                 {"NOTIFY_WORKER_NICENESS": "10"}),
            )
        }  # fmt: skip
        children.extend(workers.values())
        worker = workers["essential"]

        def healthy() -> bool:
            from bench.api import http_status

            web.check_alive()
            return http_status(f"{base}/healthz") == 200

        wait_for(healthy, 60, "notify web to answer /healthz", 0.2)
        _wait_for_worker(env, worker)
        say(
            f"service up: web (2 workers) on {base}; a worker for essential and one for "
            f"bulk+periodic with beat (2 processes each); sink {sink.name}"
        )

        steady = alert_window(
            "steady", args.rate, args.duration, base, api_key, env, web, workdir, wrk
        )
        _say_window(steady)

        campaign_id = _schedule_campaign(env)
        say(f"campaign {campaign_id} to {args.campaign_count:,} people scheduled")

        def sending() -> bool:
            _, counts, _ = _campaign_state(env, campaign_id)
            return counts.get("sent", 0) >= min(2000, args.campaign_count // 10)

        wait_for(sending, 180, "the campaign to be sending", 0.5)
        _, before, _ = _campaign_state(env, campaign_id)
        during = alert_window(
            "during a campaign", args.rate, args.duration, base, api_key, env, web, workdir, wrk
        )
        status, after, _ = _campaign_state(env, campaign_id)
        _say_window(during)
        sent_meanwhile = after.get("sent", 0) - before.get("sent", 0)
        say(
            f"  the campaign sent {sent_meanwhile:,} messages during that window and its "
            f"settling (status now {status}, {after.get('sent', 0):,} of "
            f"{args.campaign_count:,} sent)"
        )
        report_row(
            f"security alert, POST -> SMTP, steady {args.rate:.0f}/s",
            f"p99 {steady.p99 * 1000:.0f} ms", f"offered {args.rate:.0f}/s, achieved "
            f"{steady.achieved:.0f}/s", None, f"p99 < {GOAL_STEADY_P99_S:g} s",
            steady.p99 < GOAL_STEADY_P99_S and steady.sent == steady.count,
        )  # fmt: skip
        report_row(
            f"security alert, POST -> SMTP, during a campaign of {args.campaign_count:,}",
            f"p99 {during.p99 * 1000:.0f} ms", f"steady p99 {steady.p99 * 1000:.0f} ms; "
            f"campaign sent {sent_meanwhile:,} meanwhile", None,
            f"p99 < {GOAL_DURING_CAMPAIGN_P99_S:g} s",
            during.p99 < GOAL_DURING_CAMPAIGN_P99_S and during.sent == during.count,
        )  # fmt: skip
        finished = True
        return 0
    finally:
        for child in reversed(children):
            child.stop(timeout=10)
        flush_redis()
        if database is not None:
            database.drop()
        if finished:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")
        say("cleaned up: web, worker and sink stopped, database dropped, Redis db 12 flushed")


if __name__ == "__main__":
    sys.exit(main())
