"""Celery tasks: thin wrappers that take ids, call one domain function and own the retries."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any, cast

from celery import Task, shared_task
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from notify.campaigns import audience
from notify.campaigns import lifecycle as campaigns
from notify.campaigns.audience import PlannedBatch
from notify.campaigns.batches import send_batch
from notify.celery_app import NotifyCelery
from notify.delivery import outbox
from notify.delivery.enqueue import enqueue_by_name, enqueue_send
from notify.delivery.sending import Result, deliver
from notify.models import Campaign
from notify.models.base import utcnow
from notify.privacy import retention
from notify.queues import TaskName

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


@shared_task(bind=True, name=TaskName.DISPATCH_DUE_CAMPAIGNS.value)
def dispatch_due_campaigns(self: Task) -> dict[str, int]:
    """Beat, every few seconds: hold stale campaigns, start due ones, publish ready batches,
    complete finished ones. Idempotent: every step is a compare-and-set in the database."""
    app = _app(self)
    settings = app.context.settings
    now = utcnow()
    with app.context.sessions.begin() as session:
        held = campaigns.hold_stale(
            session, now=now, stale_after=timedelta(seconds=settings.campaign_stale_after_seconds)
        )
        started = campaigns.start_due(session, now=now)
        to_plan = campaigns.running_unplanned(session)
        lost_after = timedelta(seconds=settings.campaign_batch_lease_seconds)
        requeue_after = timedelta(seconds=settings.campaign_requeue_after_seconds)
        ready = campaigns.claim_ready_batches(
            session, now=now, lost_after=lost_after, requeue_after=requeue_after
        )
        completed = campaigns.complete_finished(session, now=now)
    for campaign_id in to_plan:
        enqueue_by_name(app, TaskName.PLAN_CAMPAIGN, campaign_id)
    for batch_id in ready:
        enqueue_by_name(app, TaskName.SEND_CAMPAIGN_BATCH, batch_id)
    counts = {
        "held": len(held),
        "started": len(started),
        "planning": len(to_plan),
        "batches": len(ready),
        "completed": len(completed),
    }
    if any(counts.values()):
        log.info("campaign dispatch: %s", counts)
    return counts


@shared_task(bind=True, name=TaskName.PLAN_CAMPAIGN.value)
def plan_campaign(self: Task, campaign_id: int) -> int:
    """Plan pages of a running campaign into batches, publishing each batch that is due.

    Plans for at most a few seconds, then publishes itself again with the cursor saved on the
    campaign row, so each task stays short; a lost or duplicated message is harmless.
    """
    app = _app(self)
    deadline = time.monotonic() + 5.0
    planned = 0
    while time.monotonic() < deadline:
        now = utcnow()
        try:
            batch = _plan_one_page(app, campaign_id, now)
        except IntegrityError:
            return planned  # another planner took this page (SQLite reads outside the lock)
        if batch is None:
            return planned
        planned += 1
        if batch.due_at <= now:
            enqueue_by_name(app, TaskName.SEND_CAMPAIGN_BATCH, batch.id)
    enqueue_by_name(app, TaskName.PLAN_CAMPAIGN, campaign_id)
    return planned


def _plan_one_page(app: NotifyCelery, campaign_id: int, now: datetime) -> PlannedBatch | None:
    settings = app.context.settings
    with app.context.sessions.begin() as session:
        campaign = session.get(Campaign, campaign_id)
        default_subscribed = (
            campaign is not None and campaign.category in settings.default_subscriptions
        )
        return audience.plan_next_page(
            session,
            campaign_id,
            page_size=settings.campaign_batch_size,
            default_subscribed=default_subscribed,
            default_timezone=settings.default_timezone,
            now=now,
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
