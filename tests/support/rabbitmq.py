"""A virtual host of its own on the machine's RabbitMQ (127.0.0.1:5672, guest/guest) for one
test run, made and removed with ``rabbitmqctl``; the broker itself is never stopped."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable

import pytest

RABBITMQ_HOST = os.environ.get("NOTIFY_TEST_RABBITMQ_HOST", "127.0.0.1:5672")


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()[-500:]}")


def create_rabbitmq_vhost() -> tuple[str, Callable[[], None]]:
    """A broker URL on a new virtual host for guest, and a function that deletes it."""
    vhost = f"notify-test-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return f"amqp://guest:guest@{RABBITMQ_HOST}/{vhost}", lambda: _rabbitmqctl(
        "delete_vhost", vhost
    )
