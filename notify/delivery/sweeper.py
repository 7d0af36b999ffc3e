"""The sweeper: work the broker lost, found again in the database and published again."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from notify.config import Settings
from notify.db import SessionFactory
from notify.delivery import outbox
from notify.observability import metrics

log = logging.getLogger(__name__)

PAGE_SIZE = 500
PublishSends = Callable[[Sequence[tuple[str, str]]], int]
"""``publish_sends([(notification_id, category), …])``: publish send tasks on the categories'
lanes; returns how many ids were published before the broker refused one (all, normally)."""


def republish_stuck(
    sessions: SessionFactory, settings: Settings, publish_sends: PublishSends
) -> int:
    """Re-publish notifications the broker lost or a dead worker left in ``sending`` (see
    :func:`notify.delivery.outbox.sweep_stuck` for which); returns how many.

    Works in pages of ``PAGE_SIZE`` rows, each committed and then published, and stops after
    ``NOTIFY_SWEEP_MAX_PER_RUN`` rows, so a backlog after a broker outage drains over a few runs
    without one run flooding the broker. It stops at the first publish the broker refuses (the
    rest stay ``queued`` for the next run, instead of each waiting for a broker that is down).
    A duplicate publish is harmless: the claim sends each row once.
    """
    total = 0
    pages = -(-settings.sweep_max_per_run // PAGE_SIZE)  # bounds the run even if nothing moves
    for _ in range(pages):
        if total >= settings.sweep_max_per_run:
            break
        with sessions.begin() as session:
            page = outbox.sweep_stuck(
                session,
                queued_for=timedelta(seconds=settings.sweep_queued_after_seconds),
                sending_for=timedelta(seconds=settings.sweep_sending_after_seconds),
                max_attempts=settings.max_attempts,
                limit=min(PAGE_SIZE, settings.sweep_max_per_run - total),
            )
        published = publish_sends([(item.id, item.category) for item in page.requeue])
        metrics.SWEEPER_REPUBLISHED.inc(published)
        total += published
        if published < len(page.requeue):
            log.warning("sweeper stopped: the broker refused a publish")
            return total
        if page.examined == 0:
            break
    if total:
        log.info("sweeper re-published %d notifications", total)
    return total
