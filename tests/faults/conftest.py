"""Fault experiments: services of the test's own are killed and restarted under load, with a
real worker and an SMTP server on loopback. Each experiment is bounded in time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from notify.config import Settings
from notify.db import SessionFactory, make_session_factory, open_database
from notify.migrate import upgrade
from notify.web.app import create_app
from tests.support.private_services import PrivatePostgres, PrivateRabbitMQ, PrivateRedis
from tests.support.services import SmtpServer, WorkerProcess, create_postgres_database
from tests.support.stack import SENDING_DOMAIN, TEST_TIMINGS, make_key

pytestmark = pytest.mark.integration


@dataclass
class FaultStack:
    """A worker, its SMTP server and an API client, wired to services the test may kill."""

    env: dict[str, str]
    settings: Settings
    sessions: SessionFactory
    smtp: SmtpServer
    worker: WorkerProcess
    client: TestClient
    auth: dict[str, str]
    redis: PrivateRedis | None
    postgres: PrivatePostgres | None
    rabbitmq: PrivateRabbitMQ | None = None


def _environment(database_url: str, broker_url: str, smtp: SmtpServer) -> dict[str, str]:
    values = {
        **TEST_TIMINGS,
        "NOTIFY_DATABASE_URL": database_url,
        "NOTIFY_BROKER_URL": broker_url,
        "NOTIFY_SMTP_URL": smtp.url,
        "NOTIFY_PUBLIC_URL": "https://notify.example.com",
        "NOTIFY_SENDING_DOMAIN": SENDING_DOMAIN,
        "NOTIFY_SECRET_KEYS": "fault-test-key",
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFY_")}
    env.update(values)
    return env


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        **{
            key.removeprefix("NOTIFY_").lower(): value
            for key, value in env.items()
            if key.startswith("NOTIFY_")
        }
    )


def _fault_stack(
    tmp_path: Path, overrides: dict[str, str], *, private_database: bool, rabbitmq: bool = False
) -> Iterator[FaultStack]:
    """A private Redis (or RabbitMQ node, ``rabbitmq``) as the broker, a worker, an SMTP server
    and an API client; the database is a private PostgreSQL cluster (``private_database``) or a
    database of the test's own on the shared server. Every service is stopped even if another's
    stop fails."""
    with ExitStack() as cleanup:
        postgres = None
        if private_database:
            postgres = PrivatePostgres()
            cleanup.callback(postgres.destroy)
            postgres.create()
            database_url = postgres.url
        else:
            database_url, drop = create_postgres_database()
            cleanup.callback(drop)
        redis = None
        rabbit = None
        if rabbitmq:
            rabbit = PrivateRabbitMQ(tmp_path / "rabbitmq")
            cleanup.callback(rabbit.stop)
            rabbit.start()
            broker_url = rabbit.url
        else:
            redis = PrivateRedis(tmp_path)
            cleanup.callback(redis.stop)
            redis.start()
            broker_url = redis.url
        smtp = SmtpServer()
        smtp.start()
        cleanup.callback(smtp.stop)
        upgrade(database_url)
        env = {**_environment(database_url, broker_url, smtp), **overrides}
        settings = _settings(env)
        engine = open_database(settings)
        cleanup.callback(engine.dispose)
        sessions = make_session_factory(engine)
        worker = WorkerProcess(env, tmp_path / "worker.log")
        cleanup.callback(worker.stop)
        worker.start()
        client = cleanup.enter_context(
            TestClient(create_app(settings), raise_server_exceptions=False)
        )
        auth = {"Authorization": f"Bearer {make_key(sessions)}"}
        yield FaultStack(
            env, settings, sessions, smtp, worker, client, auth, redis, postgres, rabbit
        )


# Retries spread over more than a minute, so a broker or relay outage that long is ridden out.
RIDE_OUT_A_BROKER_OUTAGE = {
    "NOTIFY_RETRY_BASE_SECONDS": "2",
    "NOTIFY_RETRY_MAX_SECONDS": "8",
    "NOTIFY_MAX_ATTEMPTS": "40",
}


@pytest.fixture
def broker_fault_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FaultStack]:
    """Shared PostgreSQL (a database of this test's own), a private Redis as the broker.
    Retries spread over more than a minute, so a relay outage that long is ridden out. An
    indirect parameter adds settings."""
    extra: dict[str, str] = getattr(request, "param", {})
    yield from _fault_stack(
        tmp_path,
        {**RIDE_OUT_A_BROKER_OUTAGE, **extra},
        private_database=False,
    )


@pytest.fixture
def rabbitmq_fault_stack(tmp_path: Path) -> Iterator[FaultStack]:
    """As :func:`broker_fault_stack`, with a private RabbitMQ node as the broker."""
    yield from _fault_stack(
        tmp_path,
        RIDE_OUT_A_BROKER_OUTAGE,
        private_database=False,
        rabbitmq=True,
    )


@pytest.fixture
def campaign_fault_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FaultStack]:
    """As :func:`broker_fault_stack`, with the campaign lease and dispatch interval at their
    defaults, so the time to resume after a crash is the one users get. An indirect parameter
    adds settings."""
    extra: dict[str, str] = getattr(request, "param", {})
    yield from _fault_stack(
        tmp_path,
        {
            "NOTIFY_CAMPAIGN_BATCH_LEASE_SECONDS": "15",
            "NOTIFY_CAMPAIGN_DISPATCH_INTERVAL_SECONDS": "10",
            "NOTIFY_VISIBILITY_TIMEOUT_SECONDS": "60",
            **extra,
        },
        private_database=False,
    )


@pytest.fixture
def database_fault_stack(tmp_path: Path) -> Iterator[FaultStack]:
    """A private PostgreSQL cluster as the database and a private Redis as the broker."""
    yield from _fault_stack(
        tmp_path,
        {
            # Long enough to ride out the 15 s outage; the sweeper waits longer still.
            "NOTIFY_SEND_ATTEMPT_SECONDS": "40",
            "NOTIFY_SWEEP_SENDING_AFTER_SECONDS": "45",
            "NOTIFY_TASK_TIME_LIMIT_SECONDS": "60",
            "NOTIFY_VISIBILITY_TIMEOUT_SECONDS": "120",
        },
        private_database=True,
    )
