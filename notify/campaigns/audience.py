"""Who a campaign reaches, a page at a time, and when each of them is due.

Pages go by recipient id (keyset, never OFFSET), so memory stays one page whatever the audience.
Each page becomes one batch: one notification row per person, unique per (campaign, recipient),
inserted with ON CONFLICT DO NOTHING so planning the same page twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from notify.models import (
    BatchStatus,
    Campaign,
    CampaignBatch,
    Notification,
    NotificationStatus,
    Preference,
    Recipient,
    Suppression,
)
from notify.models.base import utcnow
from notify.models.notifications import new_notification_id


@dataclass(frozen=True)
class AudienceFilter:
    """``audience`` of a campaign: everyone subscribed, optionally narrowed."""

    locales: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> AudienceFilter:
        locales = raw.get("locales") or ()
        user_ids = raw.get("user_ids") or ()
        assert isinstance(locales, list | tuple) and isinstance(user_ids, list | tuple)
        return cls(tuple(str(x) for x in locales), tuple(str(x) for x in user_ids))


def subscribed_audience(
    category: str, default_subscribed: bool, narrow: AudienceFilter
) -> Select[int, str | None]:
    """Recipients with an address, not erased, not suppressed, subscribed to ``category``."""
    preference = and_(Preference.recipient_id == Recipient.id, Preference.category == category)
    wants: ColumnElement[bool] = Preference.subscribed.is_(True)
    if default_subscribed:
        wants = or_(Preference.id.is_(None), wants)
    query = (
        select(Recipient.id, Recipient.timezone)
        .outerjoin(Preference, preference)
        .outerjoin(Suppression, Suppression.address_hash == Recipient.email_hash)
        .where(
            Recipient.erased_at.is_(None),
            Recipient.email.is_not(None),
            Suppression.id.is_(None),
            wants,
        )
    )
    if narrow.locales:
        query = query.where(
            or_(
                *(
                    func.lower(Recipient.locale).like(f"{locale.lower()}%")
                    for locale in narrow.locales
                )
            )
        )
    if narrow.user_ids:
        query = query.where(Recipient.user_id.in_(narrow.user_ids))
    return query


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_to_utc(local: datetime, timezone: str) -> datetime:
    """A wall-clock time in ``timezone`` as an aware UTC instant."""
    return local.replace(tzinfo=_zone(timezone)).astimezone(_zone("UTC"))


def due_time(campaign: Campaign, timezone: str | None, default_timezone: str) -> datetime:
    """When this person's message is due: the campaign's instant, or their local wall time."""
    start = campaign.start_at or utcnow()
    if not campaign.send_at_local:
        return start
    local = datetime.fromisoformat(campaign.send_at_local)
    return local_to_utc(local, timezone or default_timezone)


def earliest_local_start(
    local_iso: str, timezones: Iterable[str | None], default_timezone: str
) -> datetime:
    """The first moment any recipient reaches the local send time."""
    local = datetime.fromisoformat(local_iso)
    zones = {zone or default_timezone for zone in timezones} | {default_timezone}
    return min(local_to_utc(local, zone) for zone in zones)


def audience_timezones(
    session: Session, campaign: Campaign, default_subscribed: bool
) -> Sequence[str | None]:
    narrow = AudienceFilter.from_json(campaign.audience)
    query = subscribed_audience(campaign.category, default_subscribed, narrow).with_only_columns(
        Recipient.timezone
    )
    return session.scalars(query.distinct()).all()


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
    default_subscribed: bool,
    default_timezone: str,
    now: datetime,
) -> PlannedBatch | None:
    """Plan the next page of a running campaign into a batch; None when there is nothing left.

    Locks the campaign row (``FOR UPDATE`` on PostgreSQL) so two planners never plan the same
    page; on SQLite a second planner fails on the unique batch number instead and its task
    gives up. The cursor moves in the same transaction as the rows it covers.
    A batch due now is marked ``enqueued``: the caller publishes it after commit.
    """
    # populate_existing: a campaign already loaded in this session must be re-read under the
    # lock, or the cursor below would be the stale one and two planners would collide.
    campaign = session.get(Campaign, campaign_id, with_for_update=True, populate_existing=True)
    if campaign is None or campaign.status != "running" or campaign.planning_done:
        return None
    narrow = AudienceFilter.from_json(campaign.audience)
    page = session.execute(
        subscribed_audience(campaign.category, default_subscribed, narrow)
        .where(Recipient.id > campaign.planned_through)
        .order_by(Recipient.id)
        .limit(page_size)
    ).all()
    if not page:
        campaign.planning_done = True
        return None
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
            "id": new_notification_id(),
            "recipient_id": row[0],
            "template": campaign.template,
            "category": campaign.category,
            "data": {},  # the campaign row holds the data once, not per recipient
            "campaign_id": campaign.id,
            "batch_id": batch.id,
            "status": NotificationStatus.QUEUED.value,
            "attempts": 0,
            "next_attempt_at": due,
            "created_at": now,
            "updated_at": now,
        }
        for row, due in zip(page, dues, strict=True)
    ]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(Notification).on_conflict_do_nothing(
            index_elements=["campaign_id", "recipient_id"]
        ),
        rows,
    )
    campaign.planned_through = page[-1][0]
    campaign.batches_planned += 1
    if len(page) < page_size:
        campaign.planning_done = True
    return PlannedBatch(batch.id, first_due, len(page))
