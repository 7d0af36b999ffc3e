"""Celery tasks: thin wrappers that take ids, call one domain function and own the retries."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from functools import partial
from typing import cast

from celery import Task, shared_task

from notify import partitions
from notify.campaigns.batches import send_batch
from notify.campaigns.dispatch import dispatch_due
from notify.campaigns.planning import plan_for_a_while
from notify.celery_app import NotifyCelery
from notify.delivery.broker_table import purge_consumed
from notify.delivery.enqueue import enqueue_by_name, enqueue_send, enqueue_sends
from notify.delivery.outcomes import Outcome, Result
from notify.delivery.sending import deliver_many
from notify.delivery.sweeper import republish_stuck
from notify.models.base import utcnow
from notify.privacy import daily_counts, retention
from notify.producers.callbacks.delivery import deliver_due
from notify.queues import Publish, TaskName

PERIODIC_TASKS = frozenset(
    {
        TaskName.SWEEP_STUCK_NOTIFICATIONS.value,
        TaskName.PURGE_BROKER_TABLE.value,
        TaskName.DISPATCH_DUE_CAMPAIGNS.value,
        TaskName.APPLY_RETENTION.value,
        TaskName.CREATE_PARTITIONS.value,
        TaskName.COUNT_FINISHED_HOURS.value,
        TaskName.DELIVER_CALLBACKS.value,
    }
)


class QuietIdlePeriodicTasks(logging.Filter):
    """Celery's INFO lines about the periodic tasks, at DEBUG when there is nothing to report:
    beat's "Sending due task", the worker's "Task … received", and "Task … succeeded" when every
    count the task returned is 0. A periodic run that did something keeps its "succeeded" line
    at INFO; failures and retries are untouched. A demoted line is dropped unless its logger
    is enabled for DEBUG (``--loglevel DEBUG``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self._idle(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)

    @staticmethod
    def _idle(record: logging.LogRecord) -> bool:
        if record.name == "celery.beat":
            args = record.args if isinstance(record.args, tuple) else ()
            return str(record.msg).startswith("Scheduler: Sending due task") and bool(
                set(map(str, args)) & PERIODIC_TASKS
            )
        context = record.args
        if not isinstance(context, Mapping) or context.get("name") not in PERIODIC_TASKS:
            return False
        if "return_value" not in context:
            return "received" in str(record.msg)
        return all(count == "0" for count in re.findall(r"\d+", str(context["return_value"])))


for _name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
    logging.getLogger(_name).addFilter(QuietIdlePeriodicTasks())


def _app(task: Task) -> NotifyCelery:
    return cast(NotifyCelery, task.app)


def _publisher(app: NotifyCelery) -> Publish:
    """What domain code calls to publish a task: by name, on its routed queue, never raising."""
    return partial(enqueue_by_name, app)


@shared_task(
    bind=True,
    name=TaskName.SEND_NOTIFICATIONS.value,
    acks_late=True,
    reject_on_worker_lost=True,
)
def send_notifications(self: Task, notification_ids: list[str]) -> dict[str, int]:
    """Deliver a group of notifications of one lane over this process's relay connection
    (:func:`notify.delivery.sending.deliver_many`). Idempotent: a second delivery of this
    message sends nothing twice, since only rows still ``queued`` are claimed.

    Retries are per message: each one the relay refused for now is published again alone, with
    the countdown from the backoff policy (always below the visibility timeout).
    """
    outcomes = _deliver(_app(self), notification_ids)
    counts = Counter(outcome.result.value for outcome in outcomes.values())
    return {result.value: counts[result.value] for result in Result}


@shared_task(
    bind=True,
    name=TaskName.SEND_NOTIFICATION.value,
    acks_late=True,
    reject_on_worker_lost=True,
)
def send_notification(self: Task, notification_id: str) -> str:
    """Deliver one notification: :func:`send_notifications` for one id (the task that
    producers' messages already in a queue from an earlier version carry)."""
    return _deliver(_app(self), [notification_id])[notification_id].result.value


def _deliver(app: NotifyCelery, notification_ids: list[str]) -> dict[str, Outcome]:
    """:func:`notify.delivery.sending.deliver_many` in this process, then the retries."""
    context = app.context
    outcomes = deliver_many(
        context.sessions,
        context.transport,
        context.settings,
        notification_ids,
        retry_delay=context.retry_delay,
    )
    _publish_retries(app, outcomes)
    return outcomes


def _publish_retries(app: NotifyCelery, outcomes: Mapping[str, Outcome]) -> None:
    """Publish a send task again for each message to retry, after its delay. A lost publish
    is found again by the sweeper once the row is due."""
    for notification_id, outcome in outcomes.items():
        if outcome.result is Result.RETRY and outcome.category is not None:
            enqueue_send(app, notification_id, outcome.category, countdown=outcome.retry_in)


@shared_task(bind=True, name=TaskName.SWEEP_STUCK_NOTIFICATIONS.value)
def sweep_stuck_notifications(self: Task) -> int:
    """Re-publish notifications the broker lost or a dead worker left in ``sending``."""
    app = _app(self)
    settings = app.context.settings
    publish = partial(enqueue_sends, app, batch_size=settings.send_batch_size)
    return republish_stuck(app.context.sessions, settings, publish)


@shared_task(bind=True, name=TaskName.PURGE_BROKER_TABLE.value)
def purge_consumed_broker_messages(self: Task) -> int:
    """Embedded SQL broker only: kombu never deletes consumed rows, so we do."""
    return purge_consumed(_app(self).context.settings.broker_url)


@shared_task(bind=True, name=TaskName.DISPATCH_DUE_CAMPAIGNS.value)
def dispatch_due_campaigns(self: Task) -> dict[str, int]:
    """Beat, every few seconds: see :func:`notify.campaigns.dispatch.dispatch_due`."""
    app = _app(self)
    return dispatch_due(app.context.sessions, app.context.settings, _publisher(app))


@shared_task(bind=True, name=TaskName.PLAN_CAMPAIGN.value)
def plan_campaign(self: Task, campaign_id: int) -> int:
    """Plan pages of a running campaign: see :func:`notify.campaigns.planning.plan_for_a_while`."""
    app = _app(self)
    return plan_for_a_while(
        app.context.sessions, app.context.settings, campaign_id, _publisher(app)
    )


@shared_task(
    bind=True,
    name=TaskName.SEND_CAMPAIGN_BATCH.value,
    acks_late=True,
    reject_on_worker_lost=True,
)
def send_campaign_batch(self: Task, batch_id: int) -> dict[str, int]:
    """Send one batch over this process's SMTP connection. Safe to run twice (a lease)."""
    context = _app(self).context
    report = send_batch(
        context.sessions,
        context.transport,
        context.settings,
        batch_id,
        limiter=context.limiter,
        retry_delay=context.retry_delay,
        essential_first=context.essential_first,
    )
    return {"sent": report.sent, "suppressed": report.suppressed, "failed": report.failed}


@shared_task(bind=True, name=TaskName.APPLY_RETENTION.value)
def apply_retention(self: Task) -> dict[str, int]:
    """Beat, hourly: empty old notifications' content, delete very old rows (counts kept)."""
    context = _app(self).context
    report = retention.apply_retention(
        context.sessions,
        content_days=context.settings.retention_content_days,
        log_days=context.settings.retention_log_days,
    )
    return {"contents_removed": report.contents_removed, "rows_deleted": report.rows_deleted}


@shared_task(bind=True, name=TaskName.CREATE_PARTITIONS.value)
def create_partitions(self: Task) -> dict[str, int]:
    """Beat, hourly: keep the notifications' monthly partitions created ahead on PostgreSQL
    (:func:`notify.partitions.create_ahead`; nothing on SQLite)."""
    context = _app(self).context
    with context.sessions.begin() as session:
        created = partitions.create_ahead(session.connection(), utcnow())
    return {"created": len(created)}


@shared_task(bind=True, name=TaskName.COUNT_FINISHED_HOURS.value)
def count_finished_hours(self: Task) -> dict[str, int]:
    """Beat, every 10 minutes: add each finished hour's notifications to the daily counts once,
    so the stats read counts instead of rows
    (:func:`notify.privacy.daily_counts.count_finished_hours`)."""
    context = _app(self).context
    # Well inside the task's hard time limit; a later run goes on where this one stopped.
    limit = context.settings.task_time_limit_seconds
    counted = daily_counts.count_finished_hours(
        context.sessions,
        log_days=context.settings.retention_log_days,
        budget_seconds=limit / 4,
        settle=daily_counts.settle_time(limit),
    )
    return {"hours_counted": len(counted)}


@shared_task(bind=True, name=TaskName.DELIVER_CALLBACKS.value)
def deliver_due_callbacks(self: Task) -> dict[str, int]:
    """Beat, every ``NOTIFY_CALLBACK_POLL_SECONDS``, on the callbacks lane: send the callback
    events that are due (:func:`notify.producers.callbacks.delivery.deliver_due`)."""
    context = _app(self).context
    settings = context.settings
    # Well inside the task's hard time limit, with room for one attempt's timeout.
    room = settings.task_time_limit_seconds - settings.callback_timeout_seconds - 1
    budget = max(1.0, min(settings.callback_poll_seconds * 5, room))
    report = deliver_due(context.sessions, context.settings, context.http, budget_seconds=budget)
    return {"delivered": report.delivered, "retrying": report.retrying, "dead": report.dead}
