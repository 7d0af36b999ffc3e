"""The sweeper: work the broker lost, found again in the database and published again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from notify.config import Settings
from notify.db import SessionFactory
from notify.delivery import outbox

log = logging.getLogger(__name__)

PublishSend = Callable[[str, str], object]
"""``publish_send(notification_id, category)``: publish the send task on the category's lane."""


def republish_stuck(sessions: SessionFactory, settings: Settings, publish_send: PublishSend) -> int:
    """Re-publish notifications the broker lost or a dead worker left in ``sending`` (see
    :func:`notify.delivery.outbox.sweep_stuck` for which); returns how many. Publishing happens
    after the commit; a duplicate is harmless, since the claim sends each row once."""
    with sessions.begin() as session:
        stuck = outbox.sweep_stuck(
            session,
            queued_for=timedelta(seconds=settings.sweep_queued_after_seconds),
            sending_for=timedelta(seconds=settings.sweep_sending_after_seconds),
            max_attempts=settings.max_attempts,
        )
    for item in stuck:
        publish_send(item.id, item.category)
    if stuck:
        log.info("sweeper re-published %d notifications", len(stuck))
    return len(stuck)
