"""``notify dev`` (what ``make run`` starts), run as a real subprocess on the embedded default."""

from __future__ import annotations

import email
import json
import os
import re
import signal
import stat
import subprocess
import sys
import urllib.request
from email import policy
from pathlib import Path

import pytest

from tests.support.services import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def test_notify_dev_accepts_a_notification_and_writes_it_to_the_mailbox_folder(
    tmp_path: Path,
) -> None:
    port = free_port()
    mailbox = tmp_path / "mailbox"
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFY_")}
    env.update(
        {
            "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite'}",
            "NOTIFY_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
            "NOTIFY_SMTP_URL": f"file://{mailbox}",
        }
    )
    state = tmp_path / "state"  # the key and beat's schedule; never the repository's var/
    command = [
        sys.executable,
        "-m",
        "notify.cli",
        "dev",
        "--port",
        str(port),
        "--state-dir",
        str(state),
    ]
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        banner = wait_until(
            lambda: re.search(r"API key:\s+(\S+)", log_path.read_text()),
            90,
            "notify dev to print its API key",
        )
        output = log_path.read_text()
        assert f"http://127.0.0.1:{port}/dev/mailbox" in output
        assert "curl" in output
        key = banner.group(1)
        payload = {
            "template": "security_alert",
            "user_id": "u-dev",
            "email": "dev@example.com",
            "data": {
                "first_name": "Ada",
                "event": "New sign-in",
                "occurred_at": "now",
                "location": "here",
            },
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/notifications",
            data=json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        # The development key has every scope, preferences included.
        preferences = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/users/u-dev/preferences",
            headers={"Authorization": f"Bearer {key}"},
        )
        with urllib.request.urlopen(preferences, timeout=10) as response:
            assert response.status == 200
        key_file = state / "dev-api-key"
        assert key_file.read_text().strip() == key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

        files = wait_until(lambda: list(mailbox.glob("*.eml")), 30, "an .eml file in the mailbox")
        message = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
        assert message["To"] == "dev@example.com"
        assert message["Subject"] == "Security alert: New sign-in"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dev/mailbox", timeout=10) as page:
            assert "Security alert: New sign-in" in page.read().decode()
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/dev/mailbox/{files[0].name}", timeout=10
        ) as page:
            shown = page.read().decode()
            assert "Hello Ada" in shown
            assert "Message-ID" in shown
        children = descendants(process.pid)
        assert len(children) >= 3, "expected uvicorn, the celery worker and its pool"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"notify dev did not stop on Ctrl-C; log:\n{log_path.read_text()[-3000:]}")
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    assert [pid for pid in children if alive(pid)] == [], "children still running after Ctrl-C"
    assert "ERROR" not in output and "Traceback" not in output, output[-3000:]
    # Idle periodic tasks are not logged at INFO (beat ran its tasks more than once meanwhile).
    assert "Sending due task" not in output and "sweep_stuck_notifications[" not in output


def descendants(root: int) -> list[int]:
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True)
    parents = [tuple(map(int, line.split())) for line in table.stdout.splitlines() if line.strip()]
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2]
        if Path(f"/proc/{pid}/stat").exists()
        else "X"
    )
    return state != "Z"
