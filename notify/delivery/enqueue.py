"""Publishing task messages after commit. Messages carry ids only, never personal data."""

from __future__ import annotations

import logging

from celery import Celery

from notify.categories import get_category
from notify.queues import TaskName

log = logging.getLogger(__name__)


def enqueue_send(celery: Celery, notification_id: str, category: str) -> bool:
    """Publish the send task on the category's lane; False (and a log line) if the broker fails.

    Call only after the row is committed. A failed publish loses nothing: the row stays
    ``queued`` and the sweeper publishes it again.
    """
    try:
        celery.send_task(
            TaskName.SEND_NOTIFICATION,
            args=[notification_id],
            queue=get_category(category).lane.value,
        )
    except Exception as error:  # the broker's errors are many; none may fail the caller
        log.warning("enqueue of %s failed, the sweeper will retry: %s", notification_id, error)
        return False
    return True


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
