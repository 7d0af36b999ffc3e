"""Gauges read from the database at each scrape of the web's ``/metrics``: what is waiting.

Four small grouped queries on indexed columns (due notifications by category, campaigns by
status, batches of running campaigns, due callback events), in one read-only transaction.
When the database does not answer, ``notify_database_up`` is 0 and the other gauges are
left out for that scrape, so an alert on them does not fire on stale numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notify.db import SessionFactory
from notify.models import (
    CallbackEvent,
    Campaign,
    CampaignBatch,
    CampaignStatus,
    Notification,
    NotificationStatus,
)
from notify.models.base import utcnow
from notify.models.callbacks import CallbackEventStatus
from notify.observability.metrics import lane_of
from notify.queues import Queue

log = logging.getLogger(__name__)
MAIL_LANES = (Queue.ESSENTIAL.value, Queue.BULK.value)
NAMES = (
    "notify_database_up",
    "notify_queued_messages",
    "notify_oldest_queued_seconds",
    "notify_campaigns",
    "notify_campaign_batches",
    "notify_callback_backlog",
    "notify_callback_oldest_due_seconds",
)  # every family a scrape gets from here


def _age(now: datetime, since: datetime | None) -> float:
    return max((now - since).total_seconds(), 0.0) if since is not None else 0.0


class DatabaseGauges(Collector):
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("notify_database_up", "1 when the scrape could read the database.")
        try:
            with self.sessions() as session:
                families = list(self._read(session, utcnow()))
        except Exception as error:  # any failure: report the database down, not a 500
            log.warning("metrics: database gauges not read: %s", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self, session: Session, now: datetime) -> Iterator[Metric]:
        queued = GaugeMetricFamily(
            "notify_queued_messages",
            "Messages due and waiting to be sent, by lane (campaign messages included).",
            labels=["lane"],
        )
        oldest = GaugeMetricFamily(
            "notify_oldest_queued_seconds",
            "How long the oldest due message of a lane has waited since it became due.",
            labels=["lane"],
        )
        counts = dict.fromkeys(MAIL_LANES, 0)
        since: dict[str, datetime | None] = dict.fromkeys(MAIL_LANES)
        rows = session.execute(
            select(
                Notification.category,
                func.count(),
                func.min(Notification.next_attempt_at),
            )
            .where(
                Notification.status == NotificationStatus.QUEUED,
                Notification.next_attempt_at <= now,
            )
            .group_by(Notification.category)
        )
        for category, count, first in rows:
            lane = lane_of(category)
            counts[lane] = counts.get(lane, 0) + int(count)
            earliest = since.get(lane)
            if first is not None and (earliest is None or first < earliest):
                since[lane] = first
        for lane, count in counts.items():
            queued.add_metric([lane], count)
            oldest.add_metric([lane], _age(now, since.get(lane)))
        yield queued
        yield oldest

        campaigns = GaugeMetricFamily("notify_campaigns", "Campaigns by status.", labels=["status"])
        by_status = dict.fromkeys((status.value for status in CampaignStatus), 0)
        for found, count in session.execute(
            select(Campaign.status, func.count()).group_by(Campaign.status)
        ):
            by_status[CampaignStatus(found).value] = int(count)
        for name, count in by_status.items():
            campaigns.add_metric([name], count)
        yield campaigns

        batches = GaugeMetricFamily(
            "notify_campaign_batches",
            "Batches of each running campaign by state (pending, enqueued, running, done): its "
            "progress.",
            labels=["campaign", "state"],
        )
        for campaign_id, state, count in session.execute(
            select(CampaignBatch.campaign_id, CampaignBatch.status, func.count())
            .join(Campaign, Campaign.id == CampaignBatch.campaign_id)
            .where(Campaign.status == CampaignStatus.RUNNING)
            .group_by(CampaignBatch.campaign_id, CampaignBatch.status)
        ):
            state_name = state.value if hasattr(state, "value") else str(state)
            batches.add_metric([str(campaign_id), state_name], int(count))
        yield batches

        backlog = GaugeMetricFamily(
            "notify_callback_backlog", "Status callbacks due and not yet delivered."
        )
        callback_oldest = GaugeMetricFamily(
            "notify_callback_oldest_due_seconds",
            "How long the oldest due status callback has waited since it became due.",
        )
        count, first = session.execute(
            select(func.count(), func.min(CallbackEvent.next_attempt_at)).where(
                CallbackEvent.status == CallbackEventStatus.PENDING,
                CallbackEvent.next_attempt_at <= now,
            )
        ).one()
        backlog.add_metric([], int(count))
        callback_oldest.add_metric([], _age(now, first))
        yield backlog
        yield callback_oldest
