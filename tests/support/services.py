"""Real services for integration tests: a PostgreSQL database per run, a Redis database, an
SMTP server on loopback (aiosmtpd), and Celery worker processes.

A service that does not answer is a test *failure* naming it, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ADMIN_URL = os.environ.get(
    "NOTIFY_TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("NOTIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- PostgreSQL ---------------------------------------------------------------------------


def create_postgres_database() -> tuple[str, Callable[[], None]]:
    """A fresh database for this run, and a function that drops it."""
    import psycopg

    name = f"notify_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')

    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}", drop


def waiting_for_a_lock(sessions: Any) -> bool:
    """Whether some session of the database is waiting for a lock another one holds."""
    with sessions() as watcher:
        return bool(
            watcher.scalar(
                sqlalchemy.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


@contextmanager
def statements_run(engine: Any) -> Iterator[list[str]]:
    """The SQL statements the engine sends to its database while the block runs, in order
    (a transaction's BEGIN and COMMIT are not statements here)."""
    seen: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)


# --- Redis ----------------------------------------------------------------------------------


def clean_redis(url: str = REDIS_TEST_URL) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.flushdb()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at {url}: {error}")
    finally:
        client.close()


# --- SMTP -----------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class ScriptedHandler:
    """Accepts everything unless a script for the recipient says otherwise.

    ``script[address]`` is a list of RCPT replies used one per attempt (``"451 4.3.0 busy"``,
    ``"550 5.1.1 no such user"``, or ``"hang:10"`` to stall for 10 s before accepting);
    once it runs out, the address is accepted.
    """

    received: list[Received] = field(default_factory=list)
    rcpt_attempts: dict[str, int] = field(default_factory=dict)
    mail_from_count: int = 0
    script: dict[str, list[str]] = field(default_factory=dict)
    stalled: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        with self.lock:
            self.mail_from_count += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        with self.lock:
            self.rcpt_attempts[address] = self.rcpt_attempts.get(address, 0) + 1
            steps = self.script.get(address)
            step = steps.pop(0) if steps else None
        if step is not None and step.startswith("hang:"):
            self.stalled.set()
            await asyncio.sleep(float(step.split(":", 1)[1]))
        elif step is not None:
            return step
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 Message accepted"

    def messages_to(self, address: str) -> list[Received]:
        with self.lock:
            return [message for message in self.received if address in message.rcpt_tos]


class SmtpServer:
    """aiosmtpd on 127.0.0.1; ``idle_timeout`` makes it drop connections idle that long."""

    def __init__(self, idle_timeout: float = 300) -> None:
        self.idle_timeout = idle_timeout
        self.handler = ScriptedHandler()
        self.port = free_port()
        self._controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10,
            timeout=idle_timeout,
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        try:
            self._controller.start()
        except Exception:
            self._controller.stop()
            raise

    def stop(self) -> None:
        self._controller.stop()

    def restart(self) -> None:
        """Listen again on the same port, with the same handler (after :meth:`stop`)."""
        self._controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10,
            timeout=self.idle_timeout,
        )
        self.start()


# --- Celery worker ------------------------------------------------------------------------


class WorkerProcess:
    """``celery -A worker worker`` (with embedded beat) as a child process group we can SIGKILL."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        queues: str = "essential,bulk,periodic",
        *,
        beat: bool = True,
    ):
        self.env = env
        self.log_path = log_path
        self.queues = queues
        self.beat = beat  # False: a worker for its queues only (one beat per stack)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self, timeout: float = 60) -> None:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        schedule = self.log_path.with_suffix(f".{uuid.uuid4().hex[:6]}.schedule")
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            *(["-B"] if self.beat else []),
            "-Q",
            self.queues,
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "--schedule",
            str(schedule),
            "-n",
            f"test-{uuid.uuid4().hex[:6]}@%h",
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(self._ready, timeout, "the Celery worker to report ready", interval=0.2)

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"the Celery worker exited early; log:\n{self.log_text()[-4000:]}")
        return b" ready." in self.log_path.read_bytes()[self._log_offset :]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group: main process and pool children, no clean-up."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the process group (SIGKILL after ``timeout`` seconds); nothing to do if it
        already ended."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except ProcessLookupError:
            pass  # it had exited already (a test may be checking exactly that)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class WebProcess:
    """``notify web`` as a child process on a free port (for curl and the browser)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        import urllib.request

        command = [sys.executable, "-m", "notify.cli", "web", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def healthy() -> bool:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"notify web exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_until(healthy, timeout, "notify web to answer /readyz", interval=0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
