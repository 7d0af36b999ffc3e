"""The sweeper: work the broker lost, found again in the database and published again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from notify.config import Settings
from notify.db import SessionFactory
from notify.delivery import outbox

log = logging.getLogger(__name__)

PAGE_SIZE = 500
PublishSend = Callable[[str, str], object]
"""``publish_send(notification_id, category)``: publish the send task on the category's lane."""


def republish_stuck(sessions: SessionFactory, settings: Settings, publish_send: PublishSend) -> int:
    """Re-publish notifications the broker lost or a dead worker left in ``sending`` (see
    :func:`notify.delivery.outbox.sweep_stuck` for which); returns how many.

    Works in pages of ``PAGE_SIZE`` rows, each committed and then published, and stops after
    ``NOTIFY_SWEEP_MAX_PER_RUN`` rows, so a backlog after a broker outage drains over a few runs
    without one run flooding the broker. A duplicate publish is harmless: the claim sends each
    row once.
    """
    total = 0
    while total < settings.sweep_max_per_run:
        with sessions.begin() as session:
            stuck = outbox.sweep_stuck(
                session,
                queued_for=timedelta(seconds=settings.sweep_queued_after_seconds),
                sending_for=timedelta(seconds=settings.sweep_sending_after_seconds),
                max_attempts=settings.max_attempts,
                limit=min(PAGE_SIZE, settings.sweep_max_per_run - total),
            )
        for item in stuck:
            publish_send(item.id, item.category)
        total += len(stuck)
        if not stuck:
            break
    if total:
        log.info("sweeper re-published %d notifications", total)
    return total
