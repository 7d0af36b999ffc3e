"""A Celery worker's metrics and log context: tasks counted and timed, the lanes it serves,
and its metrics port (``NOTIFY_WORKER_METRICS_PORT`` on ``NOTIFY_METRICS_BIND``)."""

from __future__ import annotations

import time
from typing import Any

import structlog
from celery.signals import task_postrun, task_prerun

from notify.config import Settings
from notify.observability import exposition, metrics

_started: dict[str, float] = {}  # task id -> when it began, in this process


def on_worker_start(settings: Settings, consumed: set[str]) -> None:
    """In the worker's main process, before the pool forks."""
    for lane in consumed:
        metrics.WORKER_LANES.labels(lane).set(1)
    if settings.worker_metrics_port:
        exposition.serve_port(settings.worker_metrics_port, settings.metrics_bind)


@task_prerun.connect
def _task_begins(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None:
        return
    _started[task_id] = time.perf_counter()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task=getattr(task, "name", None), task_id=task_id)


@task_postrun.connect
def _task_ends(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    began = _started.pop(task_id or "", None)
    name = getattr(task, "name", None) or "unknown"
    metrics.TASKS.labels(name, (state or "unknown").lower()).inc()
    if began is not None:
        metrics.TASK_SECONDS.labels(name).observe(time.perf_counter() - began)
    structlog.contextvars.clear_contextvars()
