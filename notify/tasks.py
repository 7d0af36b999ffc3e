"""Celery tasks: thin wrappers that take ids, call one domain function and own the retries."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

from celery import Task, shared_task
from sqlalchemy import text

from notify import outbox
from notify.celery_app import NotifyCelery
from notify.enqueue import enqueue_send
from notify.queues import TaskName
from notify.sending import Result, deliver

log = logging.getLogger(__name__)


def _app(task: Task) -> NotifyCelery:
    return cast(NotifyCelery, task.app)


@shared_task(
    bind=True,
    name=TaskName.SEND_NOTIFICATION.value,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # the database counts attempts (NOTIFY_MAX_ATTEMPTS)
)
def send_notification(self: Task, notification_id: str) -> str:
    """Deliver one notification. Idempotent: a second delivery of this message does nothing.

    Retries: a transient relay error re-publishes this task with a countdown from the backoff
    policy (always below the visibility timeout); permanent errors end the row ``failed``.
    """
    context = _app(self).context
    outcome = deliver(
        context.sessions,
        context.transport,
        context.settings,
        notification_id,
        retry_delay=context.retry_delay,
    )
    if outcome.result is Result.RETRY:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.result.value


@shared_task(bind=True, name=TaskName.SWEEP_STUCK_NOTIFICATIONS.value)
def sweep_stuck_notifications(self: Task) -> int:
    """Re-publish notifications the broker lost or a dead worker left in ``sending``."""
    app = _app(self)
    settings = app.context.settings
    with app.context.sessions.begin() as session:
        stuck = outbox.sweep_stuck(
            session,
            queued_for=timedelta(seconds=settings.sweep_queued_after_seconds),
            sending_for=timedelta(seconds=settings.sweep_sending_after_seconds),
            max_attempts=settings.max_attempts,
        )
    for item in stuck:
        enqueue_send(app, item.id, item.category)
    if stuck:
        log.info("sweeper re-published %d notifications", len(stuck))
    return len(stuck)


@shared_task(bind=True, name=TaskName.PURGE_BROKER_TABLE.value)
def purge_consumed_broker_messages(self: Task) -> int:
    """Embedded SQL broker only: kombu never deletes consumed rows, so we do."""
    app = _app(self)
    url = app.context.settings.broker_url
    if not url.startswith("sqla+"):
        return 0
    from notify.db import make_engine

    engine = make_engine(url.removeprefix("sqla+"))
    try:
        with engine.begin() as connection:
            result: Any = connection.execute(text("DELETE FROM kombu_message WHERE visible = 0"))
            return int(result.rowcount or 0)
    finally:
        engine.dispose()
