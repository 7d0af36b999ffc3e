"""Faults found by the "Under faults" issue, at the level of pure functions and the command line:
uncomputable stats ranges, template data that cannot be stored, import rows with NaN or a bad
field name, the doubled configuration prefix, the mailbox warning and uvicorn's head limit."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from notify.message.template_data import InvalidFieldError, check_data
from notify.message.templates import get_template
from notify.people.user_row import UserRow, problem_line
from notify.privacy.stats import RangeError, stats_range
from notify.web.routes.mailbox import is_loopback

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 6, 1)


# --- 1. stats ranges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (None, date(1, 1, 1), "to"),
        (date(1, 1, 1), None, "from"),
        (date(9999, 12, 31), None, "from"),
        (None, date(9999, 12, 31), "to"),
        (date(1, 1, 1), date(9999, 12, 31), "from"),
        (date(2026, 5, 2), date(2026, 5, 1), "from"),
        (date(2024, 1, 1), date(2026, 1, 1), "from"),
    ],
)
def test_a_range_that_cannot_be_counted_names_its_field(
    start: date | None, end: date | None, field: str
) -> None:
    with pytest.raises(RangeError) as caught:
        stats_range(start, end, TODAY)
    assert caught.value.field == field


def test_the_default_range_is_the_last_30_days_and_never_before_2000() -> None:
    assert stats_range(None, None, TODAY) == (date(2026, 5, 3), TODAY)
    assert stats_range(None, date(2000, 1, 5), TODAY) == (date(2000, 1, 1), date(2000, 1, 5))
    assert stats_range(date(2100, 1, 1), date(2100, 1, 1), TODAY)[0] == date(2100, 1, 1)


# --- 2. template data that cannot be stored ---------------------------------------------------


def _data(**extra: Any) -> dict[str, Any]:
    return {**get_template("security_alert").sample, **extra}


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ('{"x": "\\ud800"}', ("data", "x")),
        ('{"x": {"y": ["ok", "a\\udfffb"]}}', ("data", "x", "y", "1")),
        ('{"\\ud800": 1}', ("data", "\\ud800")),
        ('{"x": {"\\udc00k": 1}}', ("data", "x", "\\udc00k")),
        ('{"x": NaN}', ("data", "x")),
        ('{"x": [1, Infinity]}', ("data", "x", "1")),
        ('{"x": {"y": -Infinity}}', ("data", "x", "y")),
        ('{"x": "a\\u0000b"}', ("data", "x")),
        ('{"a\\u0000b": "x"}', ("data", "a\\x00b")),
        ('{"x": [{"y": "\\u0000"}]}', ("data", "x", "0", "y")),
    ],
)
def test_data_that_cannot_be_encrypted_or_is_not_json_is_refused_with_its_path(
    raw: str, loc: tuple[str, ...]
) -> None:
    """json.loads reads lone surrogates, NaN and Infinity, as FastAPI and the CLI do."""
    with pytest.raises(InvalidFieldError) as caught:
        check_data(get_template("security_alert"), _data(**json.loads(raw)), 16_384)
    assert caught.value.loc == loc
    json.dumps(caught.value.loc, ensure_ascii=False).encode("utf-8")  # always answerable


def test_ordinary_data_still_passes() -> None:
    nested = {"a": [1, 2.5, {"b": "ü ✓"}], "c": None, "d": True}
    check_data(get_template("security_alert"), _data(x=nested, y=-0.0), 16_384)


def test_deep_nesting_is_a_field_error_not_a_recursion_error() -> None:
    nested: Any = "leaf"
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(InvalidFieldError) as caught:
        check_data(get_template("security_alert"), _data(x=nested), 10**6)
    assert caught.value.loc[:2] == ("data", "x")
    assert "nested" in caught.value.msg


# --- 2. import rows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"user_id": NaN, "email": "a@example.com"}', "user_id: must be text or a finite"),
        ('{"user_id": Infinity, "email": "a@example.com"}', "user_id: must be text or a finite"),
        ('{"user_id": "u1", "email": "a@example.com", "\\ud800": 1}', "field name '\\ud800'"),
        ('{"user_id": "u\\ud800", "email": "a@example.com"}', "user_id: is not valid Unicode"),
    ],
)
def test_an_import_row_with_nan_or_a_lone_surrogate_is_refused_naming_the_field(
    line: str, expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        UserRow.model_validate(json.loads(line))
    message = problem_line(caught.value)
    assert message.startswith(expected), message
    message.encode("utf-8")


# --- 4. the configuration prefix, once --------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("NOTIFY_RETRY_MAX_SECONDS", "99999", "NOTIFY_RETRY_MAX_SECONDS"),
        ("NOTIFY_MAX_ATTEMPTS", "0", "NOTIFY_MAX_ATTEMPTS"),
        ("NOTIFY_MAX_BODY_BYTES", "100", "NOTIFY_MAX_BODY_BYTES"),
    ],
)
def test_a_configuration_error_prints_its_prefix_once(
    variable: str, value: str, named: str
) -> None:
    env = {key: item for key, item in os.environ.items() if not key.startswith("NOTIFY_")}
    env[variable] = value
    done = subprocess.run(
        [sys.executable, "-m", "notify.cli", "web", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("notify: bad configuration: NOTIFY_"), lines[0]
    assert lines[0].count("configuration") == 1, lines[0]
    assert named in lines[0]


# --- 5 and 7. `notify web`: the mailbox warning and uvicorn's limits -------------------------


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """uvicorn.run recorded, not run; what `notify web` sets up for its process (the metrics
    folder in the environment, the log format) stays inside the test."""
    import uvicorn

    from notify.observability import logs

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(logs, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in list(os.environ):
        if name.startswith("NOTIFY_"):
            monkeypatch.delenv(name)
    return calls


def _web(*args: str) -> None:
    from notify.cli.app import app

    result = CliRunner().invoke(app, ["web", *args])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "notify.example.com"])
def test_notify_web_warns_when_the_mailbox_pages_are_on_and_the_bind_is_not_loopback(
    host: str, uvicorn_calls: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        _web("--host", host)
    assert uvicorn_calls and uvicorn_calls[0]["host"] == host
    assert any("/dev/mailbox" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_notify_web_on_loopback_does_not_warn(
    host: str, uvicorn_calls: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        _web("--host", host)
    assert not [record for record in caplog.records if "/dev/mailbox" in record.getMessage()]


def test_notify_web_runs_uvicorn_with_h11_and_a_bounded_request_head(
    uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's default parser, httptools, accepts a request head of any size."""
    monkeypatch.setenv("NOTIFY_MAX_HEADER_BYTES", "8192")
    _web()
    assert uvicorn_calls[0]["http"] == "h11"
    assert uvicorn_calls[0]["h11_max_incomplete_event_size"] == 8192


def test_notify_dev_starts_uvicorn_with_the_same_limits() -> None:
    from notify.cli.dev import web_command
    from notify.config import Settings

    command = web_command("python", 8000, Settings(max_header_bytes=8192))
    assert command[command.index("--http") + 1] == "h11"
    assert command[command.index("--h11-max-incomplete-event-size") + 1] == "8192"
    assert command[command.index("--host") + 1] == "127.0.0.1"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("testclient", False),
        ("", False),
    ],
)
def test_loopback_means_127_0_0_0_8_and_ipv6_1(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
