"""``notify dev``: web, worker and beat on the embedded default, stopped together by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from notify.config import Settings, load_settings_or_exit

ROOT = Path(__file__).resolve().parents[2]
ALL_SCOPES = ("notifications:send", "users:read", "users:write")


def _wait_for_health(url: str, processes: list[subprocess.Popen[bytes]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(processes: list[subprocess.Popen[bytes]], grace: float = 20) -> None:
    """SIGTERM each child's process group, wait for all of it, SIGKILL what outlives ``grace``."""
    for process in processes:
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        while _group_alive(process.pid) and time.monotonic() < deadline:
            process.poll()  # reap the leader so its group can empty
            time.sleep(0.1)
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def web_command(python: str, port: int, settings: Settings) -> list[str]:
    """uvicorn on loopback, as ``notify web`` runs it: h11 with the request head bounded by
    ``NOTIFY_MAX_HEADER_BYTES`` (see ``notify.cli.app.uvicorn_limits``), no access log."""
    return [
        python,
        "-m",
        "uvicorn",
        "--factory",
        "notify.web.app:app_from_environment",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--http",
        "h11",
        "--h11-max-incomplete-event-size",
        str(settings.max_header_bytes),
    ]


def run_dev(port: int) -> int:
    """Migrate, make a key, start the children, print where to look; returns an exit code."""
    from notify.db import make_session_factory, open_database
    from notify.migrate import upgrade
    from notify.producers.api_keys import create_key

    os.environ.setdefault("NOTIFY_PUBLIC_URL", f"http://127.0.0.1:{port}")
    settings = load_settings_or_exit()
    (ROOT / "var").mkdir(exist_ok=True)
    upgrade(settings.database_url)
    engine = open_database(settings)
    with make_session_factory(engine).begin() as session:
        _, secret = create_key(session, "make run", ALL_SCOPES)
    engine.dispose()

    python = sys.executable
    worker = [
        python,
        "-m",
        "celery",
        "-A",
        "worker",
        "worker",
        "-B",
        "-Q",
        "essential,bulk,periodic",
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
        "--schedule",
        str(ROOT / "var" / "celerybeat-schedule"),
    ]
    web = web_command(python, port, settings)
    processes = [
        subprocess.Popen(command, cwd=ROOT, start_new_session=True)  # noqa: S603 (our own argv)
        for command in (web, worker)
    ]
    # SIGINT too: a shell that starts us in the background hands SIGINT down as ignored.
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {number: signal.signal(number, _interrupt) for number in stop_signals}
    try:
        base = f"http://127.0.0.1:{port}"
        if not _wait_for_health(f"{base}/healthz", processes, timeout=60):
            sys.stderr.write("notify dev: the web server or worker did not start; see above\n")
            return 1
        mailbox = settings.smtp.mailbox if settings.smtp.is_mailbox else None
        body = (
            '{"template": "security_alert", "user_id": "u-42", "email": "ada@example.com", '
            '"data": {"first_name": "Ada", "event": "New sign-in", '
            '"occurred_at": "just now", "location": "your laptop"}}'
        )
        lines = [
            "",
            "notify is running on the embedded default (SQLite, SQL broker, local mailbox).",
            f"  API key:   {secret}",
            "  send one:  curl -s -X POST " + f"{base}/v1/notifications "
            f"-H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' "
            f"-d '{body}'",
            f"  mailbox:   {base}/dev/mailbox" + (f"  (files in {mailbox})" if mailbox else ""),
            f"  API docs:  {base}/docs",
            "Ctrl-C stops web, worker and beat.",
            "",
        ]
        print("\n".join(lines), flush=True)  # noqa: T201 (this banner is the command's output)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        sys.stderr.write("notify dev: a child process ended; stopping the rest\n")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _stop(processes)
