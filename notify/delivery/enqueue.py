"""Publishing task messages after commit. Messages carry ids only, never personal data."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import groupby

from celery import Celery

from notify.categories import get_category
from notify.queues import TaskName

log = logging.getLogger(__name__)


def enqueue_send(
    celery: Celery, notification_id: str, category: str, *, countdown: float = 0.0
) -> bool:
    """Publish the send task for one row (in ``countdown`` seconds): :func:`enqueue_sends`."""
    return enqueue_sends(celery, [(notification_id, category)], countdown=countdown) == 1


def enqueue_sends(
    celery: Celery,
    items: Sequence[tuple[str, str]],
    *,
    batch_size: int = 1,
    countdown: float = 0.0,
) -> int:
    """Publish send tasks for ``(notification_id, category)`` items: one task per group of up
    to ``batch_size`` ids of one lane, in the order given within a lane. Returns how many ids
    were published; stops at the first publish the broker refuses (with a log line).

    Call only after the rows are committed. A failed publish loses nothing: the rows stay
    ``queued`` and the sweeper publishes them again.
    """
    published = 0
    lane_of = {key: get_category(key).lane.value for key in {category for _, category in items}}
    ordered = sorted(items, key=lambda item: lane_of[item[1]])  # stable: order kept in a lane
    for lane, in_lane in groupby(ordered, key=lambda item: lane_of[item[1]]):
        ids = [notification_id for notification_id, _ in in_lane]
        for start in range(0, len(ids), batch_size):
            group = ids[start : start + batch_size]
            try:
                celery.send_task(
                    TaskName.SEND_NOTIFICATIONS,
                    args=[group],
                    queue=lane,
                    countdown=countdown or None,
                )
            except Exception as error:  # the broker's errors are many; none may fail the caller
                log.warning(
                    "enqueue of %d notification(s) from %s failed, the sweeper will retry: %s",
                    len(group),
                    group[0],
                    error,
                )
                return published
            published += len(group)
    return published


def enqueue_by_name(celery: Celery, task: TaskName, *args: object) -> bool:
    """Publish ``task`` with id arguments on its routed queue; False if the broker fails.

    Losing one is harmless: the dispatcher finds unpublished work in the database again.
    """
    try:
        celery.send_task(task.value, args=list(args))
    except Exception as error:  # the broker's errors are many; none may fail the caller
        log.warning(
            "enqueue of %s%s failed, the dispatcher will retry: %s", task.value, args, error
        )
        return False
    return True


def after_resume(celery: Celery, campaign_id: int) -> None:
    """Planning restarts now; batches pending since the pause go out on the next dispatch."""
    enqueue_by_name(celery, TaskName.PLAN_CAMPAIGN, campaign_id)
    enqueue_by_name(celery, TaskName.DISPATCH_DUE_CAMPAIGNS)
