"""Planning a running campaign: its audience, a page at a time, becomes batches of rows.

Each page becomes one batch: one notification row per person, unique per (campaign, recipient),
inserted with ON CONFLICT DO NOTHING so planning the same page twice adds nothing. The cursor
(the last recipient id planned) moves in the same transaction as the rows it covers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notify import partitions
from notify.campaigns.audience import AudienceFilter, due_time, members
from notify.config import Settings
from notify.db import ANALYZE_AFTER_ROWS, SessionFactory, insert_on_conflict, refresh_statistics
from notify.models import (
    BatchStatus,
    Campaign,
    CampaignBatch,
    CampaignStatus,
    Notification,
    NotificationStatus,
)
from notify.models.base import utcnow
from notify.models.notifications import new_notification_id
from notify.queues import Publish, TaskName

PLAN_SECONDS = 5.0


@dataclass(frozen=True)
class PlannedBatch:
    id: int
    due_at: datetime
    size: int


def plan_next_page(
    session: Session,
    campaign_id: int,
    *,
    page_size: int,
    defaults: frozenset[str],
    default_timezone: str,
    now: datetime,
) -> PlannedBatch | None:
    """Plan the next page of a running campaign into a batch; None when there is nothing left.

    Locks the campaign row (``FOR UPDATE`` on PostgreSQL) so two planners never plan the same
    page; on SQLite a second planner fails on the unique batch number instead and its task
    gives up. The cursor moves in the same transaction as the rows it covers.
    A batch due now is marked ``enqueued``: the caller publishes it after commit.
    Every message of the campaign is dated ``planned_at``, the moment its first page was
    planned, so a person planned twice meets the unique ``(campaign_id, recipient_id,
    created_at)`` and is skipped, and the campaign's rows share one month's partition.
    """
    # populate_existing: a campaign already loaded in this session must be re-read under the
    # lock, or the cursor below would be the stale one and two planners would collide.
    campaign = session.get(Campaign, campaign_id, with_for_update=True, populate_existing=True)
    if campaign is None or campaign.status != CampaignStatus.RUNNING or campaign.planning_done:
        return None
    narrow = AudienceFilter.from_json(campaign.audience)
    page = members(
        session,
        campaign.category,
        defaults,
        narrow,
        after=campaign.planned_through,
        limit=page_size,
    )
    if not page:
        campaign.planning_done = True
        return None
    if campaign.planned_at is None:
        campaign.planned_at = now
    dues = [due_time(campaign, row[1], default_timezone) for row in page]
    first_due = min(dues)
    batch = CampaignBatch(
        campaign_id=campaign.id,
        batch_no=campaign.batches_planned + 1,
        due_at=first_due,
        status=BatchStatus.ENQUEUED if first_due <= now else BatchStatus.PENDING,
    )
    session.add(batch)
    session.flush()
    rows = [
        {
            "id": new_notification_id(campaign.planned_at),
            "recipient_id": row[0],
            "template": campaign.template,
            "category": campaign.category,
            "data": {},  # the campaign row holds the data once, not per recipient
            "campaign_id": campaign.id,
            "batch_id": batch.id,
            "status": NotificationStatus.QUEUED.value,
            "attempts": 0,
            "next_attempt_at": due,
            "created_at": campaign.planned_at,
            "updated_at": now,
        }
        for row, due in zip(page, dues, strict=True)
    ]
    session.execute(
        insert_on_conflict(session, Notification).on_conflict_do_nothing(
            index_elements=["campaign_id", "recipient_id", "created_at"]
        ),
        rows,
    )
    campaign.planned_through = page[-1][0]
    campaign.batches_planned += 1
    if len(page) < page_size:
        campaign.planning_done = True
    return PlannedBatch(batch.id, first_due, len(page))


def plan_for_a_while(
    sessions: SessionFactory,
    settings: Settings,
    campaign_id: int,
    publish: Publish,
    *,
    seconds: float = PLAN_SECONDS,
) -> int:
    """Plan pages of a running campaign into batches, publishing each batch that is due;
    returns how many were planned.

    Plans for at most ``seconds``, then publishes the planning task again (the cursor is on
    the campaign row), so each task stays short; a lost or duplicated message is harmless.
    Having written many rows, it refreshes the notifications table's statistics, so the
    batches already sending stop planning their statements for the small table it was.
    """
    deadline = time.monotonic() + seconds
    batches: list[PlannedBatch] = []
    while time.monotonic() < deadline:
        now = utcnow()
        try:
            batch = _plan_one_page(sessions, settings, campaign_id, now)
        except IntegrityError:
            break  # another planner took this page (SQLite reads outside the lock)
        if batch is None:
            break
        batches.append(batch)
        if batch.due_at <= now:
            publish(TaskName.SEND_CAMPAIGN_BATCH, batch.id)
    else:  # out of time with pages left: a fresh task goes on from the cursor
        publish(TaskName.PLAN_CAMPAIGN, campaign_id)
    if sum(batch.size for batch in batches) >= ANALYZE_AFTER_ROWS:
        with sessions() as session:  # the campaign's month only: a partition, not the table
            planned_at = session.scalar(
                select(Campaign.planned_at).where(Campaign.id == campaign_id)
            )
            table = Notification.__tablename__
            if planned_at is not None:
                table = partitions.holding(session.connection(), table, planned_at)
        refresh_statistics(sessions, table)
    return len(batches)


def _plan_one_page(
    sessions: SessionFactory, settings: Settings, campaign_id: int, now: datetime
) -> PlannedBatch | None:
    with sessions.begin() as session:
        return plan_next_page(
            session,
            campaign_id,
            page_size=settings.campaign_batch_size,
            defaults=settings.default_subscriptions,
            default_timezone=settings.default_timezone,
            now=now,
        )
