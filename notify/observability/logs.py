"""Log lines for people and for collectors: one setup for the web, the workers and the CLI.

Every line passes through structlog's processors whether it was written with the standard
library's ``logging`` (all of notify, Celery, uvicorn) or with structlog: level, logger,
an ISO 8601 UTC time, ``extra=`` fields, and what is bound in the context (``request_id`` in
the web, ``task`` and ``task_id`` in a worker). ``NOTIFY_LOG_FORMAT=json`` renders one JSON
object a line; ``text`` a readable line. What reaches a line was masked where it was
written (:mod:`notify.masking`): addresses masked, tokens never logged.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from notify.config import Settings

HANDLER_NAME = "notify"


def wants_json(settings: Settings) -> bool:
    if settings.log_format == "auto":
        return settings.env == "production"
    return settings.log_format == "json"


def _celery_task_fields(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Celery's own "Task … succeeded in …s" lines as fields: task, task_id, duration."""
    record = event.get("_record")
    if record is None or not record.name.startswith("celery.app.trace"):
        return event
    details = event.get("data")  # Celery passes them as extra={"data": {...}}
    if not isinstance(details, dict):
        details = record.args if isinstance(record.args, dict) else {}
    if "name" in details:
        event.setdefault("task", details["name"])
    if "id" in details:
        event.setdefault("task_id", details["id"])
    if isinstance(details.get("runtime"), int | float):
        event["duration_seconds"] = round(float(details["runtime"]), 4)
    return event


def configure_logging(settings: Settings, level: int | str = logging.INFO) -> None:
    """Route every log record of this process to stderr in the chosen format."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Tracebacks without the frames' local variables: they hold addresses, decrypted data
    # and settings with their keys, which must never reach a log line.
    renderer: Any
    if wants_json(settings):
        renderer = structlog.processors.JSONRenderer()
        finishing: list[Any] = [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        finishing = []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _celery_task_fields],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *finishing,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    # Replace plain console handlers (basicConfig's, or ours from an earlier call); keep any
    # other (a test's log capture, a file an operator added).
    for old in list(root.handlers):
        if old.get_name() == HANDLER_NAME or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # HTTP clients log each request's full URL at INFO: a callback receiver's or an SNS
    # subscription URL may carry a token.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
