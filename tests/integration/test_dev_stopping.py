"""`notify dev` stops everything it started: on SIGINT inherited as ignored (started with `&`
from a script), SIGTERM and SIGHUP, cleanly (no ERROR lines); its key survives a restart; and
when it is SIGKILLed its web server and worker do not live on. Each run on files of its own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_dev_command import alive, descendants
from tests.support.services import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration

IGNORING_SIGINT = ["bash", "-c", 'trap "" INT; exec "$@"', "bash"]


class DevRun:
    """One `notify dev` subprocess on SQLite files and a state folder under ``folder``."""

    def __init__(self, folder: Path, log_name: str, prefix: list[str] | None = None) -> None:
        self.port = free_port()
        self.log = folder / log_name
        env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFY_")}
        env.update(
            {
                "NOTIFY_DATABASE_URL": f"sqlite:///{folder / 'notify.sqlite'}",
                "NOTIFY_BROKER_URL": f"sqla+sqlite:///{folder / 'broker.sqlite'}",
                "NOTIFY_SMTP_URL": f"file://{folder / 'mailbox'}",
            }
        )
        command = [
            *(prefix or []),
            sys.executable,
            "-m",
            "notify.cli",
            "dev",
            "--port",
            str(self.port),
            "--state-dir",
            str(folder / "state"),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.key = ""
        self.children: list[int] = []

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_banner(self) -> str:
        found = wait_until(
            lambda: (
                self.process.poll() is not None or re.search(r"API key:\s+(\S+)", self.output())
            ),
            90,
            "notify dev to print its API key",
        )
        assert self.process.poll() is None, self.output()[-3000:]
        self.key = found.group(1)

        def started() -> list[int] | None:
            children = descendants(self.process.pid)
            return children if len(children) >= 3 else None

        self.children = wait_until(started, 30, "uvicorn, the celery worker and its pool")
        return self.key

    def stop_with(self, number: int) -> int:
        self.process.send_signal(number)
        try:
            return self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            pytest.fail(f"notify dev did not stop on {number!r}; log:\n{self.output()[-3000:]}")

    def cleanup(self) -> None:
        """Whatever of this run is left, by the pids it recorded (never by name)."""
        for pid in [self.process.pid, *self.children]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def survivors(self) -> list[int]:
        return [pid for pid in self.children if alive(pid)]

    def preferences_status(self) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/users/nobody/preferences",
            headers={"Authorization": f"Bearer {self.key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


@pytest.fixture
def runs() -> Iterator[list[DevRun]]:
    started: list[DevRun] = []
    yield started
    for run in started:
        run.cleanup()


def assert_clean_stop(run: DevRun, code: int) -> None:
    output = run.output()
    assert code == 0, output[-3000:]
    assert run.survivors() == [], f"still running after the stop:\n{output[-3000:]}"
    assert "ERROR" not in output and "Traceback" not in output, output[-3000:]


def test_ctrl_c_stops_everything_when_sigint_was_inherited_as_ignored(
    tmp_path: Path, runs: list[DevRun]
) -> None:
    probe = [sys.executable, "-c", "import signal; print(signal.getsignal(2) == signal.SIG_IGN)"]
    inherited = subprocess.run([*IGNORING_SIGINT, *probe], capture_output=True, text=True)
    assert inherited.stdout.strip() == "True"  # what the shell hands down

    run = DevRun(tmp_path, "dev.log", prefix=IGNORING_SIGINT)
    runs.append(run)
    run.wait_for_banner()
    assert_clean_stop(run, run.stop_with(signal.SIGINT))


def test_sigterm_and_sighup_stop_everything_and_the_key_works_after_a_restart(
    tmp_path: Path, runs: list[DevRun]
) -> None:
    first = DevRun(tmp_path, "first.log")
    runs.append(first)
    key = first.wait_for_banner()
    assert "(new; every scope)" in first.output()
    assert first.preferences_status() in (200, 404)  # never 403: every scope
    assert_clean_stop(first, first.stop_with(signal.SIGTERM))

    second = DevRun(tmp_path, "second.log")
    runs.append(second)
    assert second.wait_for_banner() == key
    assert "(the same as last time; every scope)" in second.output()
    assert second.preferences_status() in (200, 404)
    assert_clean_stop(second, second.stop_with(signal.SIGHUP))


def test_a_sigkilled_notify_dev_takes_its_children_with_it(
    tmp_path: Path, runs: list[DevRun]
) -> None:
    run = DevRun(tmp_path, "dev.log")
    runs.append(run)
    run.wait_for_banner()
    run.process.kill()
    run.process.wait(timeout=10)
    wait_until(
        lambda: not run.survivors(),
        15,
        f"the children of a SIGKILLed notify dev to end (left: {run.survivors()})",
    )
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{run.port}/healthz", timeout=2)
