"""Queue and task names, and the routes between them: the one place they are spelled.

Workers consume :data:`ALL_QUEUES`; a test checks docker-compose.yml runs a worker for each.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class Queue(StrEnum):
    ESSENTIAL = "essential"  # security and administrative mail: never behind a campaign
    BULK = "bulk"  # product updates and campaign batches
    PERIODIC = "periodic"  # sweeper and housekeeping from beat
    CALLBACKS = "callbacks"  # producers' status callbacks: a slow receiver waits here, not mail


class TaskName(StrEnum):
    SEND_NOTIFICATION = "notify.send_notification"  # one id; kept for messages already queued
    SEND_NOTIFICATIONS = "notify.send_notifications"  # a group of ids of one lane
    SWEEP_STUCK_NOTIFICATIONS = "notify.sweep_stuck_notifications"
    PURGE_BROKER_TABLE = "notify.purge_consumed_broker_messages"
    DISPATCH_DUE_CAMPAIGNS = "notify.dispatch_due_campaigns"
    PLAN_CAMPAIGN = "notify.plan_campaign"
    SEND_CAMPAIGN_BATCH = "notify.send_campaign_batch"
    APPLY_RETENTION = "notify.apply_retention"
    CREATE_PARTITIONS = "notify.create_partitions"
    COUNT_FINISHED_HOURS = "notify.count_finished_hours"
    DELIVER_CALLBACKS = "notify.deliver_due_callbacks"


ALL_QUEUES: tuple[Queue, ...] = tuple(Queue)

# Send tasks are routed per call (by the category's lane); these are the fixed routes.
TASK_ROUTES: dict[str, dict[str, str]] = {
    TaskName.SWEEP_STUCK_NOTIFICATIONS: {"queue": Queue.PERIODIC},
    TaskName.PURGE_BROKER_TABLE: {"queue": Queue.PERIODIC},
    TaskName.DISPATCH_DUE_CAMPAIGNS: {"queue": Queue.PERIODIC},
    TaskName.PLAN_CAMPAIGN: {"queue": Queue.PERIODIC},
    TaskName.SEND_CAMPAIGN_BATCH: {"queue": Queue.BULK},
    TaskName.APPLY_RETENTION: {"queue": Queue.PERIODIC},
    TaskName.CREATE_PARTITIONS: {"queue": Queue.PERIODIC},
    TaskName.COUNT_FINISHED_HOURS: {"queue": Queue.PERIODIC},
    TaskName.DELIVER_CALLBACKS: {"queue": Queue.CALLBACKS},
}


Publish = Callable[..., object]
"""``publish(task_name, *id_arguments)``: publish a task on its routed queue, after the caller's
commit, and never raise (a lost message is found again in the database). Domain code takes
one of these instead of importing Celery; ``notify.tasks`` makes it."""
