"""Session-wide real services as pytest fixtures: PostgreSQL, Redis, an SMTP server, a Celery
worker and `notify web`. Loaded for every test folder by tests/conftest.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from notify import crypto
from notify.config import Settings
from notify.db import SessionFactory, make_session_factory, open_database
from notify.migrate import upgrade
from notify.models import Notification, Operator
from notify.operators import accounts
from notify.producers.api_keys import SCOPES, create_key
from notify.web.app import create_app
from tests.support.services import (
    REDIS_TEST_URL,
    SmtpServer,
    WebProcess,
    WorkerProcess,
    clean_redis,
    create_postgres_database,
    wait_until,
)

SENDING_DOMAIN = "mail.notify.example"
SESSION_END_SECONDS = 5.0  # a session's own worker at the end of the run: nothing waits on it

# Short timings so retries, the sweeper and redelivery happen within a test.
TEST_TIMINGS = {
    "NOTIFY_RETRY_BASE_SECONDS": "0.5",
    "NOTIFY_RETRY_MAX_SECONDS": "2",
    "NOTIFY_MAX_ATTEMPTS": "4",
    "NOTIFY_VISIBILITY_TIMEOUT_SECONDS": "15",
    "NOTIFY_TASK_TIME_LIMIT_SECONDS": "10",
    # A send group may start another message while a whole relay exchange (3 s) and a database
    # reconnect (2 s + 2 s) still fit in its attempt (10 s): groups of many run in the tests.
    "NOTIFY_SMTP_TIMEOUT_SECONDS": "3",
    "NOTIFY_DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
    "NOTIFY_SWEEP_QUEUED_AFTER_SECONDS": "3",
    "NOTIFY_SEND_ATTEMPT_SECONDS": "10",
    "NOTIFY_SWEEP_SENDING_AFTER_SECONDS": "11",
    "NOTIFY_SWEEP_INTERVAL_SECONDS": "1",
    "NOTIFY_CAMPAIGN_BATCH_SIZE": "100",
    "NOTIFY_CAMPAIGN_BATCH_SECONDS": "4",
    "NOTIFY_CAMPAIGN_BATCH_LEASE_SECONDS": "6",
    "NOTIFY_CAMPAIGN_REQUEUE_AFTER_SECONDS": "20",
    "NOTIFY_CAMPAIGN_DISPATCH_INTERVAL_SECONDS": "1",
    # Every test presses unsubscribe buttons from one address, seconds after delivery, as a
    # link scanner would: the scanner guard's own tests set low thresholds on an app of theirs.
    "NOTIFY_SCANNER_BURST_PER_NETWORK": "100000",
    "NOTIFY_SCANNER_BURST_PER_DOMAIN": "100000",
}


@dataclass
class Stack:
    env: dict[str, str]
    settings: Settings
    engine: Engine
    sessions: SessionFactory
    smtp: SmtpServer
    worker: WorkerProcess


@contextmanager
def migrated_postgres_database() -> Iterator[str]:
    """A new PostgreSQL database on the shared server, migrated; dropped when the block ends."""
    url, drop = create_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with migrated_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis the main tier's service uses as its broker, emptied first. The first (or only)
    test process has the tests' database (``NOTIFY_TEST_REDIS_URL``, db 11); each further
    pytest-xdist process (``gw1``, ``gw2``, …) a Redis server of its own on a spare loopback
    port, so no process's worker ever takes another's tasks or loses them to its flush. In
    ``make test`` only the main job starts this stack: the job beside it must not, as its first
    process would take db 11 too (the Makefile says which tests run where)."""
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0":
        clean_redis(REDIS_TEST_URL)
        yield REDIS_TEST_URL
        return
    from tests.support.private_services import PrivateRedis

    own = PrivateRedis(tmp_path_factory.mktemp("redis"))
    own.start()
    try:
        yield own.url
    finally:
        own.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def service_env(
    database_url: str, broker_url: str, smtp_url: str
) -> tuple[dict[str, str], Settings]:
    """The environment of the service's processes in the tests, and the same as Settings."""
    env_vars = {
        "NOTIFY_DATABASE_URL": database_url,
        "NOTIFY_BROKER_URL": broker_url,
        "NOTIFY_SMTP_URL": smtp_url,
        "NOTIFY_PUBLIC_URL": "https://notify.example.com",
        "NOTIFY_SENDING_DOMAIN": SENDING_DOMAIN,
        "NOTIFY_SECRET_KEYS": "integration-test-key",
        "NOTIFY_WORKER_METRICS_PORT": "0",  # a test that scrapes a worker gives it a port
        **TEST_TIMINGS,
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFY_")}
    env.update(env_vars)
    settings = Settings(
        **{key.removeprefix("NOTIFY_").lower(): value for key, value in env_vars.items()}
    )
    return env, settings


@pytest.fixture(scope="session")
def stack(
    postgres_url: str,
    broker_url: str,
    smtp_server: SmtpServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    env, settings = service_env(postgres_url, broker_url, smtp_server.url)
    engine = open_database(settings)
    worker = WorkerProcess(env, tmp_path_factory.mktemp("worker") / "worker.log")
    worker.start()
    try:
        yield Stack(env, settings, engine, make_session_factory(engine), smtp_server, worker)
    finally:
        worker.stop(timeout=SESSION_END_SECONDS)
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The embedded default, as `make run` has it: SQLite and kombu's SQL broker on SQLite
    files, with a worker of its own (same SMTP server and timings as :func:`stack`)."""
    folder = tmp_path_factory.mktemp("embedded")
    overrides = {
        "NOTIFY_DATABASE_URL": f"sqlite:///{folder / 'notify.sqlite'}",
        "NOTIFY_BROKER_URL": f"sqla+sqlite:///{folder / 'broker.sqlite'}",
    }
    env = {**stack.env, **overrides}
    settings = stack.settings.model_copy(
        update={key.removeprefix("NOTIFY_").lower(): value for key, value in overrides.items()}
    )
    upgrade(settings.database_url)
    engine = open_database(settings)
    worker = WorkerProcess(env, folder / "worker.log")
    worker.start()
    try:
        yield Stack(env, settings, engine, make_session_factory(engine), stack.smtp, worker)
    finally:
        worker.stop(timeout=SESSION_END_SECONDS)
        engine.dispose()


@pytest.fixture(scope="session")
def rabbitmq_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The service on RabbitMQ: a virtual host of its own on the machine's broker, a database,
    an SMTP server and a Redis (for the rate limit) of its own, and a worker with beat. It
    shares nothing with :func:`stack`, so its tests can run in a pytest process beside the
    main run (``make test``)."""
    from tests.support.private_services import PrivateRedis
    from tests.support.rabbitmq import create_rabbitmq_vhost

    broker_url, delete_vhost = create_rabbitmq_vhost()
    database_url, drop_database = create_postgres_database()
    smtp = SmtpServer()
    smtp.start()
    # The campaign rate limit is shared through Redis, as production requires with RabbitMQ:
    # a Redis server of its own, so its counts never meet the main run's (db 11).
    folder = tmp_path_factory.mktemp("rabbitmq")
    rate_limits = PrivateRedis(folder)
    rate_limits.start()
    env, settings = service_env(database_url, broker_url, smtp.url)
    env["NOTIFY_RATE_LIMIT_URL"] = rate_limits.url
    settings = settings.model_copy(update={"rate_limit_url": rate_limits.url})
    engine = None
    worker = None
    try:
        upgrade(database_url)
        engine = open_database(settings)
        worker = WorkerProcess(env, folder / "worker.log")
        worker.start()
        yield Stack(env, settings, engine, make_session_factory(engine), smtp, worker)
    finally:
        if worker is not None:
            worker.stop(timeout=SESSION_END_SECONDS)
        if engine is not None:
            engine.dispose()
        smtp.stop()
        rate_limits.stop()
        drop_database()
        delete_vhost()


@pytest.fixture(scope="session")
def web_server(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProcess]:
    server = WebProcess(stack.env, tmp_path_factory.mktemp("web") / "web.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings), raise_server_exceptions=False) as test_client:
        yield test_client


def make_key(sessions: SessionFactory, *scopes: str) -> str:
    with sessions.begin() as session:
        _, secret = create_key(session, "test", scopes or SCOPES)
    return secret


@pytest.fixture(scope="session")
def api_key(stack: Stack) -> str:
    return make_key(stack.sessions)


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def notification_row(stack: Stack, notification_id: str) -> Notification | None:
    with stack.sessions() as session:
        return session.get(Notification, notification_id)


def wait_for_status(
    stack: Stack, notification_id: str, *statuses: str, timeout: float = 30
) -> Notification:
    def done() -> Notification | None:
        row = notification_row(stack, notification_id)
        return row if row is not None and row.status in statuses else None

    result: Notification = wait_until(done, timeout, f"notification to reach {statuses}")
    return result


def ensure_worker(stack: Stack) -> None:
    if not stack.worker.running:
        stack.worker.start()


@pytest.fixture(autouse=True)
def _worker_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that stops or kills the worker leaves it running again for the next one."""
    yield
    if "stack" in request.fixturenames:
        ensure_worker(request.getfixturevalue("stack"))


@pytest.fixture(scope="session", autouse=True)
def _data_keys_installed() -> None:
    """The data keys every stack here runs with, installed before the first test of a process:
    the fixture below then always has a key ring to put back. Without it, a process whose first
    test started a stack left the key ring uninstalled after that test."""
    crypto.install(Settings().data_key_list)


@pytest.fixture(autouse=True)
def _data_keys_left_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that installs data keys of its own (``crypto.install``) leaves the process's key
    ring as it found it: the in-process app of a later test would otherwise store rows the
    worker, which has the stack's keys, cannot decrypt."""
    monkeypatch.setattr(crypto, "_keyring", crypto._keyring)


def sample_data(template: str) -> dict[str, Any]:
    from notify.message.templates import get_template

    return dict(get_template(template).sample)


def operator_with_password(session: Session, email: str, role: str, password: str) -> None:
    """A console operator who has already chosen ``password`` (their setup link used)."""
    link = accounts.create(session, email, role)
    accounts.set_password(session, session.get_one(Operator, link.operator_id), password)


def new_person(client: TestClient, auth: dict[str, str], prefix: str, **fields: str) -> str:
    """A new user ``<prefix>-…`` at ``<user id>@example.com`` (and ``fields``); their user id."""
    user_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    body = {"email": f"{user_id}@example.com", **fields}
    answer = client.put(f"/v1/users/{user_id}", json=body, headers=auth)
    assert answer.status_code == 201, answer.text
    return user_id


def send(client: TestClient, auth: dict[str, str], user_id: str, template: str) -> str:
    """Queue ``template`` with its sample data to a known user; the notification's id."""
    body = {"template": template, "user_id": user_id, "data": sample_data(template)}
    answer = client.post("/v1/notifications", json=body, headers=auth)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def send_alert(client: TestClient, auth: dict[str, str], prefix: str) -> tuple[str, str]:
    """Queue a security alert (its sample data) to a new user ``<prefix>-…`` at
    ``<user id>@example.com``; returns the notification's id and the user id."""
    user_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    body = {
        "template": "security_alert",
        "user_id": user_id,
        "email": f"{user_id}@example.com",
        "data": sample_data("security_alert"),
    }
    answer = client.post("/v1/notifications", json=body, headers=auth)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"]), user_id


@dataclass
class OwnStack:
    """A notify of one test's own on the embedded default: a migrated SQLite database, kombu's
    SQL broker and a mailbox folder, all under the test's temporary folder, and a key with every
    scope. No worker, no Redis, no PostgreSQL: nothing shared with other test runs.

    ``env`` is this process's environment without any ``NOTIFY_*`` variable, plus the settings
    above, for a ``notify web`` subprocess listening on ``port`` (``NOTIFY_PUBLIC_URL`` points
    there, so the links in composed emails reach it)."""

    env: dict[str, str]
    settings: Settings
    sessions: SessionFactory
    key: str
    port: int

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[OwnStack]:
    from tests.support.services import free_port

    port = free_port()
    values = {
        "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite'}",
        "NOTIFY_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
        "NOTIFY_SMTP_URL": f"file://{tmp_path / 'mailbox'}",
        "NOTIFY_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFY_")}
    env.update(values)
    settings = Settings(
        **{key.removeprefix("NOTIFY_").lower(): value for key, value in values.items()}
    )
    settings.smtp.mailbox.mkdir()
    upgrade(settings.database_url)
    engine = open_database(settings)
    try:
        sessions = make_session_factory(engine)
        yield OwnStack(env, settings, sessions, make_key(sessions), port)
    finally:
        engine.dispose()
