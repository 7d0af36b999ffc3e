"""Every periodic job, by task name. Beat publishes them to the ``periodic`` queue."""

from __future__ import annotations

from typing import Any

from notify.config import Settings
from notify.queues import Queue, TaskName


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {
        "sweep-stuck-notifications": {
            "task": TaskName.SWEEP_STUCK_NOTIFICATIONS.value,
            "schedule": settings.sweep_interval_seconds,
            "options": {"queue": Queue.PERIODIC.value, "expires": settings.sweep_interval_seconds},
        },
    }
    schedule["dispatch-due-campaigns"] = {
        "task": TaskName.DISPATCH_DUE_CAMPAIGNS.value,
        "schedule": settings.campaign_dispatch_interval_seconds,
        "options": {
            "queue": Queue.PERIODIC.value,
            "expires": settings.campaign_dispatch_interval_seconds,
        },
    }
    schedule["apply-retention"] = {
        "task": TaskName.APPLY_RETENTION.value,
        "schedule": 3600.0,
        "options": {"queue": Queue.PERIODIC.value, "expires": 3600.0},
    }
    schedule["create-partitions"] = {
        "task": TaskName.CREATE_PARTITIONS.value,
        "schedule": 3600.0,
        "options": {"queue": Queue.PERIODIC.value, "expires": 3600.0},
    }
    schedule["count-finished-hours"] = {
        "task": TaskName.COUNT_FINISHED_HOURS.value,
        "schedule": 600.0,
        "options": {"queue": Queue.PERIODIC.value, "expires": 600.0},
    }
    schedule["deliver-due-callbacks"] = {
        "task": TaskName.DELIVER_CALLBACKS.value,
        "schedule": settings.callback_poll_seconds,
        "options": {"queue": Queue.CALLBACKS.value, "expires": settings.callback_poll_seconds},
    }
    if settings.broker_url.startswith("sqla+"):
        schedule["purge-consumed-broker-messages"] = {
            "task": TaskName.PURGE_BROKER_TABLE.value,
            "schedule": 600.0,
            "options": {"queue": Queue.PERIODIC.value},
        }
    return schedule
