"""What beat does for campaigns every few seconds: hold stale ones, start due ones, publish
ready batches and planning, complete finished ones.

Idempotent: every step is a compare-and-set in the database, so two beats, or a dispatch
that runs twice, change nothing twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from notify.campaigns import health, lifecycle
from notify.config import Settings
from notify.db import SessionFactory
from notify.models.base import utcnow
from notify.queues import Publish, TaskName

log = logging.getLogger(__name__)


def dispatch_due(sessions: SessionFactory, settings: Settings, publish: Publish) -> dict[str, int]:
    """One round of dispatch in one transaction; tasks are published after its commit.
    Returns how many campaigns or batches each step touched."""
    now = utcnow()
    with sessions.begin() as session:
        held = lifecycle.hold_stale(
            session, now=now, stale_after=timedelta(seconds=settings.campaign_stale_after_seconds)
        )
        started = lifecycle.start_due(session, now=now)
        to_plan = lifecycle.running_unplanned(session)
        lost_after = timedelta(seconds=settings.campaign_batch_lease_seconds)
        requeue_after = timedelta(seconds=settings.campaign_requeue_after_seconds)
        ready = lifecycle.claim_ready_batches(
            session, now=now, lost_after=lost_after, requeue_after=requeue_after
        )
        completed = lifecycle.complete_finished(session, now=now)
        unhealthy = health.pause_unhealthy(session, settings)
    for campaign_id in to_plan:
        publish(TaskName.PLAN_CAMPAIGN, campaign_id)
    for batch_id in ready:
        publish(TaskName.SEND_CAMPAIGN_BATCH, batch_id)
    counts = {
        "held": len(held),
        "started": len(started),
        "planning": len(to_plan),
        "batches": len(ready),
        "completed": len(completed),
        "needs_attention": len(unhealthy),
    }
    if any(counts.values()):
        log.info("campaign dispatch: %s", counts)
    return counts
