"""`notify dev` / `make run` without starting anything: the port check, PORT and HOST, the key
file, and the worker's log lines about idle periodic tasks."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS
from typer.testing import CliRunner

from notify.cli.app import app
from notify.cli.dev import _write_private, port_problem, url_host
from notify.tasks import QuietIdlePeriodicTasks
from tests.support.services import ROOT


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_a_busy_port_is_one_line_with_the_make_run_hint(busy_port: int) -> None:
    problem = port_problem("127.0.0.1", busy_port)
    assert problem is not None
    assert "\n" not in problem
    assert f"port {busy_port} on 127.0.0.1 is already in use" in problem
    assert f"make run PORT={busy_port + 1}" in problem


def test_a_free_port_and_an_unknown_host(busy_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    assert port_problem("127.0.0.1", free) is None
    unknown = port_problem("no-such-host.invalid", free)
    assert unknown is not None and "make run HOST=127.0.0.1" in unknown


def test_notify_dev_on_a_busy_port_stops_before_anything_starts(
    busy_port: int, tmp_path: Path
) -> None:
    database = tmp_path / "notify.sqlite"
    result = CliRunner().invoke(
        app,
        ["dev", "--port", str(busy_port), "--state-dir", str(tmp_path / "state")],
        env={"NOTIFY_DATABASE_URL": f"sqlite:///{database}"},
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("notify dev: port ")
    assert "Traceback" not in result.output
    assert not database.exists()
    assert not (tmp_path / "state").exists()


def test_make_run_passes_port_and_host_to_notify_dev() -> None:
    # The test may itself run under make (make test, CI): drop what a parent make passes down,
    # or the child prints "Entering/Leaving directory" lines around the plan.
    inherited = ("PORT", "HOST", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    env = {key: value for key, value in os.environ.items() if key not in inherited}
    env["HOST"] = "my-laptop"  # some shells export the machine's name; make run ignores it

    def planned(*variables: str) -> str:
        done = subprocess.run(
            ["make", "--no-print-directory", "-n", "run", *variables],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        commands = [line for line in done.stdout.splitlines() if "notify dev" in line]
        assert len(commands) == 1, done.stdout
        return commands[0].strip()

    assert planned().endswith("notify dev --host 127.0.0.1 --port 8000")
    assert planned("PORT=8001").endswith("notify dev --host 127.0.0.1 --port 8001")
    assert planned("PORT=8002", "HOST=0.0.0.0").endswith("notify dev --host 0.0.0.0 --port 8002")


def test_urls_use_loopback_for_a_wildcard_address() -> None:
    assert url_host("0.0.0.0") == "127.0.0.1"
    assert url_host("::") == "[::1]"
    assert url_host("::1") == "[::1]"
    assert url_host("localhost") == "localhost"


def test_the_key_file_is_private_from_its_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "dev-api-key"
    leftover = tmp_path / ".dev-api-key.partial"
    leftover.write_text("old")
    leftover.chmod(0o644)
    old_mask = os.umask(0)
    try:
        _write_private(path, "nfy_secret")
    finally:
        os.umask(old_mask)
    assert path.read_text() == "nfy_secret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not leftover.exists()


# --- the worker's lines about periodic tasks ----------------------------------------------------


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def worker_log(request: pytest.FixtureRequest) -> Iterator[Kept]:
    """The three Celery loggers at the level the worker runs with (INFO, or the param)."""
    level = getattr(request, "param", logging.INFO)
    kept = Kept()
    loggers = [logging.getLogger(name) for name in ("celery.beat", "celery.app.trace")]
    loggers.append(logging.getLogger("celery.worker.strategy"))
    before = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
        logger.propagate = False
        logger.addHandler(kept)
    yield kept
    for logger, (old_level, old_propagate) in zip(loggers, before, strict=True):
        logger.removeHandler(kept)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def task_lines(name: str, returned: str) -> None:
    context = {"id": "x", "name": name, "args": "()", "kwargs": "{}", "eta": None}
    logging.getLogger("celery.worker.strategy").info(LOG_RECEIVED, context)
    success = {**context, "return_value": returned, "runtime": 0.01}
    logging.getLogger("celery.app.trace").info(LOG_SUCCESS, success)


def test_idle_periodic_tasks_say_nothing_at_info(worker_log: Kept) -> None:
    beat = logging.getLogger("celery.beat")
    beat.info("Scheduler: Sending due task %s (%s)", "sweep", "notify.sweep_stuck_notifications")
    task_lines("notify.sweep_stuck_notifications", "0")
    task_lines("notify.dispatch_due_campaigns", "{'held': 0, 'started': 0, 'batches': 0}")
    task_lines("notify.purge_consumed_broker_messages", "0")
    task_lines("notify.apply_retention", "{'contents_removed': 0, 'rows_deleted': 0}")
    assert [record.getMessage() for record in worker_log.records] == []


def test_periodic_tasks_that_did_something_and_other_tasks_keep_their_lines(
    worker_log: Kept,
) -> None:
    task_lines("notify.sweep_stuck_notifications", "3")
    task_lines("notify.dispatch_due_campaigns", "{'held': 0, 'started': 1, 'batches': 2}")
    task_lines("notify.send_notification", "sent")
    shown = [(record.levelname, record.getMessage()) for record in worker_log.records]
    assert [level for level, _ in shown] == ["INFO"] * 4
    assert "notify.sweep_stuck_notifications[x] succeeded" in shown[0][1]
    assert "notify.dispatch_due_campaigns[x] succeeded" in shown[1][1]
    assert shown[2][1].endswith("notify.send_notification[x] received")


@pytest.mark.parametrize("worker_log", [logging.DEBUG], indirect=True)
def test_with_debug_logging_the_idle_lines_show_as_debug(worker_log: Kept) -> None:
    task_lines("notify.sweep_stuck_notifications", "0")
    assert [record.levelname for record in worker_log.records] == ["DEBUG", "DEBUG"]


def test_the_filter_is_on_the_loggers_celery_uses() -> None:
    for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
        assert any(isinstance(f, QuietIdlePeriodicTasks) for f in logging.getLogger(name).filters)
