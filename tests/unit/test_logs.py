"""The log format (notify.observability.logs): JSON or text lines with the bound context, and
tracebacks that never print the frames' local variables (addresses, keys)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from notify.config import Settings
from notify.observability.logs import HANDLER_NAME, configure_logging

SECRET = "data-key-that-must-stay-secret-0123456789"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    root.handlers = handlers
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _fail_with_personal_locals() -> None:
    email = "alice@example.com"
    keys = Settings(data_keys=SECRET)
    raise ValueError(f"could not send ({len(email)} characters, {keys.env})")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_traceback_names_the_error_and_never_the_locals(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_format=log_format))
    try:
        _fail_with_personal_locals()
    except ValueError:
        logging.getLogger("notify.test").exception("send failed")
    written = capsys.readouterr().err
    assert "ValueError" in written and "could not send" in written
    assert "_fail_with_personal_locals" in written  # the frames are there
    assert "alice@example.com" not in written
    assert SECRET not in written


def test_json_lines_carry_the_bound_request_id_and_extra_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings(log_format="json"))
    structlog.contextvars.bind_contextvars(request_id="req-1")
    logging.getLogger("notify.test").info(
        "notification %s sent", "n-1", extra={"notification_id": "n-1"}
    )
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["event"] == "notification n-1 sent"
    assert (entry["request_id"], entry["notification_id"]) == ("req-1", "n-1")
    assert entry["level"] == "info" and entry["logger"] == "notify.test"
    assert entry["timestamp"].endswith("Z")


def test_configuring_twice_keeps_one_console_handler_and_leaves_others_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logging.getLogger().addHandler(logging.StreamHandler())  # as the CLI's basicConfig does
    configure_logging(Settings(log_format="text"))
    configure_logging(Settings(log_format="json"))
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if handler.get_name() == HANDLER_NAME]
    plain = [handler for handler in root.handlers if type(handler) is logging.StreamHandler]
    assert len(ours) == 1 and plain == ours
    logging.getLogger("notify.test").warning("still captured")
    assert "still captured" in caplog.text  # pytest's capture handler was kept


def test_http_clients_do_not_log_the_urls_they_call() -> None:
    """httpx logs each request's URL at INFO; a callback or SNS subscription URL may hold a
    token."""
    configure_logging(Settings(log_format="json"))
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
    assert logging.getLogger("notify.anything").isEnabledFor(logging.INFO)
