"""The Celery application and what each worker process holds (engine, sessions, transport).

Configuration follows the Redis caveats: late acks with reject-on-worker-lost (the claim makes
redelivery safe), prefetch 1, no result backend, every countdown and the hard time limit below
the visibility timeout. On RabbitMQ: quorum queues, publisher confirms and native delayed
delivery (:func:`rabbitmq_config`). Built by :func:`create_celery` at process start.
"""

from __future__ import annotations

import os
import random
from typing import Any, cast

import httpx
from celery import Celery
from celery.signals import setup_logging, worker_init, worker_process_init
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy import Engine

from notify.campaigns.rate_limit import RateLimiter
from notify.campaigns.yielding import EssentialFirst, for_worker
from notify.config import Settings
from notify.db import SessionFactory, make_session_factory, open_database
from notify.delivery import broker_redis, broker_sql
from notify.delivery.transport import Transport, make_transport
from notify.observability import worker as observed_worker
from notify.observability.logs import configure_logging
from notify.producers.callbacks.delivery import new_client as new_http_client
from notify.queues import ALL_QUEUES, TASK_ROUTES, Queue, TaskName


class WorkerContext:
    """Per-process resources, made lazily and made again in a forked child."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pid = os.getpid()
        self._engine: Engine | None = None
        self._sessions: SessionFactory | None = None
        self._transport: Transport | None = None
        self._limiter: RateLimiter | None = None
        self._http: httpx.Client | None = None
        self._essential_first: EssentialFirst | None = None
        self.consumed: set[str] = set()  # the queues this worker serves (-Q), set at its start

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            self.after_fork()

    def after_fork(self) -> None:
        """Drop what the parent opened; never share pooled connections across ``fork()``."""
        self._pid = os.getpid()
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._transport = None
        self._limiter = None
        self._http = None  # its connections belong to the parent
        self._essential_first = None

    @property
    def sessions(self) -> SessionFactory:
        self._check_fork()
        if self._sessions is None:
            # No pre-ping in workers: a dead connection fails the task, the row stays queued
            # and the sweeper publishes it again; a ping per message would cost a round trip.
            self._engine = open_database(self.settings, pool_pre_ping=False)
            self._sessions = make_session_factory(self._engine)
        return self._sessions

    @property
    def http(self) -> httpx.Client:
        """This process's HTTP client for callbacks (connections kept per receiver)."""
        self._check_fork()
        if self._http is None:
            self._http = new_http_client(self.settings)
        return self._http

    @property
    def transport(self) -> Transport:
        self._check_fork()
        if self._transport is None:
            self._transport = make_transport(
                self.settings.smtp,
                timeout=self.settings.smtp_timeout_seconds,
                ca_file=self.settings.smtp_ca_file,
            )
        return self._transport

    @property
    def limiter(self) -> RateLimiter:
        self._check_fork()
        if self._limiter is None:
            self._limiter = RateLimiter(self.settings.rate_limit_storage)
        return self._limiter

    @property
    def essential_first(self) -> EssentialFirst:
        """How this process's campaign batches give way to essential mail."""
        self._check_fork()
        if self._essential_first is None:
            self._essential_first = for_worker(self.settings, consumed=self.consumed)
        return self._essential_first

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next attempt: exponential backoff (Celery's formula, capped at
        ``NOTIFY_RETRY_MAX_SECONDS``) with full jitter, never below half the base.

        The jitter is drawn here, uniformly: Celery's own draws whole seconds and raises for
        a base that is not a whole number of seconds."""
        settings = self.settings
        capped = get_exponential_backoff_interval(
            factor=settings.retry_base_seconds,
            retries=max(attempts - 1, 0),
            maximum=settings.retry_max_seconds,
            full_jitter=False,
        )
        return max(random.uniform(0, capped), settings.retry_base_seconds / 2)  # noqa: S311


class NotifyCelery(Celery):  # type: ignore[misc]
    context: WorkerContext


def celery_config(settings: Settings) -> dict[str, Any]:
    visibility = settings.visibility_timeout_seconds
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_time_limit": settings.task_time_limit_seconds,
        "task_soft_time_limit": max(settings.task_time_limit_seconds - 30, 10),
        "worker_prefetch_multiplier": 1,
        # Never cancel a running task because the broker connection dropped: a send that has
        # reached the relay must finish and record its outcome. Its message comes back after
        # the loss (late ack), and the claim makes that second delivery a no-op.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,  # notify.observability.logs sets logging up
        "worker_send_task_events": settings.worker_events,  # for Flower
        "task_send_sent_event": settings.worker_events,
        "task_routes": TASK_ROUTES,
        # A transactional send task lives at most NOTIFY_SEND_ATTEMPT_SECONDS (the sweeper
        # waits longer before it takes a "sending" row back).
        "task_annotations": {
            task.value: {
                "time_limit": settings.send_attempt_seconds,
                "soft_time_limit": max(settings.send_attempt_seconds - 1, 1),
            }
            for task in (TaskName.SEND_NOTIFICATION, TaskName.SEND_NOTIFICATIONS)
        },
        "task_default_queue": Queue.ESSENTIAL.value,
        "timezone": "UTC",
        "enable_utc": True,
    }
    if settings.broker_is_rabbitmq:
        config.update(rabbitmq_config())
    if settings.broker_url.startswith("sqla+"):
        # The SQL broker polls its queues; kombu sleeps 1 s between empty polls by default,
        # which each hop of a campaign (dispatch, plan, batch) would wait (broker_sql).
        config["broker_transport_options"] = {"polling_interval": settings.broker_poll_seconds}
    if settings.broker_is_redis:
        # All three places, or the 1 h default wins somewhere (celery#7651).
        config["broker_transport_options"] = {"visibility_timeout": visibility}
        config["result_backend_transport_options"] = {"visibility_timeout": visibility}
        config["visibility_timeout"] = visibility
        config["worker_soft_shutdown_timeout"] = 30.0
    return config


def rabbitmq_config() -> dict[str, Any]:
    """RabbitMQ as the broker: every lane a durable quorum queue (replicated, and a message
    that a consumer does not acknowledge is returned, never lost with a node) on a topic
    exchange of its own, so a retry's countdown goes through the broker's native delayed
    delivery (Celery declares its delay exchanges at worker start) instead of waiting
    unacknowledged in a worker; publisher confirms, so a publish returns only once the broker
    has the message. Late acks and prefetch 1 are set for every broker."""
    from kombu.entity import Exchange
    from kombu.entity import Queue as KombuQueue

    return {
        "task_queues": [
            KombuQueue(  # type: ignore[no-untyped-call]
                lane.value,
                Exchange(lane.value, type="topic", durable=True),  # type: ignore[no-untyped-call]
                routing_key=lane.value,
                durable=True,
                queue_arguments={"x-queue-type": "quorum"},
            )
            for lane in ALL_QUEUES
        ],
        "broker_transport_options": {"confirm_publish": True},
        "worker_detect_quorum_queues": True,  # quorum queues refuse a global prefetch limit
    }


def create_celery(settings: Settings) -> NotifyCelery:
    if settings.broker_is_redis:
        broker_redis.install()
    if settings.broker_url.startswith("sqla+"):
        broker_sql.install()
    app = NotifyCelery("notify", set_as_current=True)
    app.conf.update(celery_config(settings))
    app.context = WorkerContext(settings)
    import notify.tasks  # noqa: F401  (registers the shared tasks on this app)

    return app


@worker_process_init.connect
def _fresh_resources_in_child(**_: Any) -> None:
    from celery import current_app

    context = getattr(current_app, "context", None)
    if context is not None:
        cast(WorkerContext, context).after_fork()


@worker_init.connect
def _at_worker_start(sender: Any = None, **_: Any) -> None:
    """In the worker's main process, before the pool forks: note the queues it serves and
    apply ``NOTIFY_WORKER_NICENESS``."""
    app = getattr(sender, "app", None)
    context = cast(WorkerContext | None, getattr(app, "context", None))
    if app is None or context is None:
        return
    context.consumed = set(app.amqp.queues.consume_from)
    if context.settings.worker_niceness > 0:
        os.nice(context.settings.worker_niceness)
    observed_worker.on_worker_start(context.settings, context.consumed)


@setup_logging.connect
def _logging(loglevel: Any = None, **_: Any) -> None:
    """notify's log format for the worker and beat (Celery leaves logging to this)."""
    from celery import current_app

    context = getattr(current_app, "context", None)
    if context is not None:
        configure_logging(cast(WorkerContext, context).settings, loglevel or "INFO")
