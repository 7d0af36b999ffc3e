"""A campaign's life: create, schedule, start when due, pause, resume, cancel, complete.

Every change of status is a compare-and-set on the campaign row, so two requests (or two beat
processes) cannot both start, resume or cancel the same campaign. Data functions take the
session first and never commit; nothing here is ever scheduled with a Celery ETA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from notify.campaigns import audience
from notify.db import utc_text
from notify.message.template_data import InvalidFieldError, check_data
from notify.message.templates import EmailTemplate, get_template
from notify.models import (
    BatchStatus,
    Campaign,
    CampaignBatch,
    CampaignStatus,
    ConsentEvent,
    Notification,
    NotificationStatus,
)
from notify.models.base import utcnow

Status = CampaignStatus


class CampaignStateError(Exception):
    """The campaign is not in a state that allows this (answered 409)."""


@dataclass(frozen=True)
class CampaignDraft:
    name: str
    template: str
    data: dict[str, Any]
    send_at: datetime | None = None
    send_at_local: datetime | None = None
    locales: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    rate_limit: float | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # each must match, compared as text


def _checked(draft: CampaignDraft, max_data_bytes: int) -> EmailTemplate:
    """The draft's template, once its data and send time pass (:class:`InvalidFieldError`)."""
    template = get_template(draft.template)
    if template.category.essential:
        raise InvalidFieldError(
            ("template",),
            f"{template.name} is essential mail; campaigns send only optional categories",
        )
    check_data(template, draft.data, max_data_bytes)
    if draft.send_at is not None and draft.send_at_local is not None:
        raise InvalidFieldError(("send_at_local",), "give send_at or send_at_local, not both")
    return template


def _audience(draft: CampaignDraft) -> dict[str, Any]:
    audience: dict[str, Any] = {"locales": list(draft.locales), "user_ids": list(draft.user_ids)}
    if draft.attributes:
        audience["attributes"] = dict(draft.attributes)
    return audience


def _local_text(draft: CampaignDraft) -> str | None:
    return draft.send_at_local.isoformat(timespec="minutes") if draft.send_at_local else None


def create(
    session: Session, draft: CampaignDraft, *, created_by: str | None, max_data_bytes: int
) -> Campaign:
    """A draft campaign. Only non-essential templates can be used (a 422 otherwise)."""
    template = _checked(draft, max_data_bytes)
    campaign = Campaign(
        name=draft.name,
        template=template.name,
        category=template.category.key,
        data=draft.data,
        audience=_audience(draft),
        send_at=draft.send_at,
        send_at_local=_local_text(draft),
        rate_limit=draft.rate_limit,
        status=Status.DRAFT,
        created_by=created_by,
    )
    session.add(campaign)
    session.flush()
    return campaign


def update_draft(
    session: Session, campaign_id: int, draft: CampaignDraft, *, max_data_bytes: int
) -> Campaign:
    """Replace a draft's content, audience, send time and rate with ``draft``'s, checked as
    :func:`create` checks them. Raises :class:`CampaignStateError` unless it is still a draft
    (a scheduled campaign is changed by pausing or cancelling it, never edited)."""
    campaign = session.get(Campaign, campaign_id, with_for_update=True, populate_existing=True)
    if campaign is None or campaign.status != Status.DRAFT:
        raise CampaignStateError("only a draft can be edited")
    checked = _checked(draft, max_data_bytes)
    campaign.name = draft.name
    campaign.template = checked.name
    campaign.category = checked.category.key
    campaign.data = draft.data
    campaign.audience = _audience(draft)
    campaign.send_at = draft.send_at
    campaign.send_at_local = _local_text(draft)
    campaign.rate_limit = draft.rate_limit
    campaign.updated_at = utcnow()
    session.flush()
    return campaign


def _transition(
    session: Session, campaign_id: int, allowed: Sequence[Status], to: Status, **values: Any
) -> bool:
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.in_([s.value for s in allowed]))
        .values(status=to.value, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def _require(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise LookupError(campaign_id)
    return campaign


def schedule(
    session: Session,
    campaign_id: int,
    *,
    defaults: frozenset[str],
    default_timezone: str,
    now: datetime | None = None,
) -> Campaign:
    """Schedule a draft, or re-confirm one held in ``needs_confirmation``.

    The start is the send time, the first local send time among the audience's time zones, or
    now; a time already past means now, since whoever schedules it is asking for it to go.
    """
    now = now or utcnow()
    campaign = _require(session, campaign_id)
    if campaign.status not in (Status.DRAFT, Status.NEEDS_CONFIRMATION):
        raise CampaignStateError(f"a {campaign.status} campaign cannot be scheduled")
    if campaign.send_at_local:
        zones = audience.audience_timezones(session, campaign, defaults)
        start = audience.earliest_local_start(campaign.send_at_local, zones, default_timezone)
    else:
        start = campaign.send_at or now
    if not _transition(
        session,
        campaign_id,
        (Status.DRAFT, Status.NEEDS_CONFIRMATION),
        Status.SCHEDULED,
        start_at=max(start, now),
        status_reason=None,
    ):
        raise CampaignStateError("the campaign changed meanwhile; read it and try again")
    session.refresh(campaign)
    return campaign


def pause(session: Session, campaign_id: int) -> Campaign:
    """Stop new batches; a batch in flight stops before its next message."""
    if not _transition(session, campaign_id, (Status.RUNNING, Status.SCHEDULED), Status.PAUSED):
        raise CampaignStateError(
            f"a {_require(session, campaign_id).status} campaign cannot be paused"
        )
    return _require(session, campaign_id)


def resume(session: Session, campaign_id: int) -> Campaign:
    """Continue where it stopped: rows already sent stay sent, the rest are sent once."""
    campaign = _require(session, campaign_id)
    target = Status.RUNNING if campaign.started_at is not None else Status.SCHEDULED
    if campaign.status == Status.NEEDS_ATTENTION:  # judged afresh from now on
        moved = _transition(
            session, campaign_id, (Status.NEEDS_ATTENTION,), target,
            status_reason=None, health_from=utcnow(),
        )  # fmt: skip
    else:
        moved = _transition(session, campaign_id, (Status.PAUSED,), target, status_reason=None)
    if not moved:
        raise CampaignStateError(f"a {campaign.status} campaign cannot be resumed")
    session.refresh(campaign)
    return campaign


def cancel(session: Session, campaign_id: int) -> Campaign:
    """Cancel; every message not yet handed to the relay ends ``cancelled``."""
    open_states = (
        Status.DRAFT,
        Status.SCHEDULED,
        Status.RUNNING,
        Status.PAUSED,
        Status.NEEDS_CONFIRMATION,
        Status.NEEDS_ATTENTION,
    )
    if not _transition(session, campaign_id, open_states, Status.CANCELLED, finished_at=utcnow()):
        raise CampaignStateError(
            f"a {_require(session, campaign_id).status} campaign cannot be cancelled"
        )
    now = utcnow()
    live_batches = select(CampaignBatch.id).where(
        CampaignBatch.campaign_id == campaign_id,
        CampaignBatch.status == BatchStatus.RUNNING,
        CampaignBatch.lease_until >= now,
    )
    # Queued rows, and rows a dead worker left in ``sending`` (its batch holds no live lease);
    # a live batch finishes its one message in flight and stops at the next.
    session.execute(
        update(Notification)
        .where(
            Notification.campaign_id == campaign_id,
            or_(
                Notification.status == NotificationStatus.QUEUED,
                and_(
                    Notification.status == NotificationStatus.SENDING,
                    Notification.batch_id.not_in(live_batches),
                ),
            ),
        )
        .values(status=NotificationStatus.CANCELLED, reason="campaign cancelled", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(CampaignBatch)
        .where(CampaignBatch.campaign_id == campaign_id, CampaignBatch.id.not_in(live_batches))
        .values(status=BatchStatus.DONE)
        .execution_options(synchronize_session=False)
    )
    return _require(session, campaign_id)


def change(
    session: Session,
    campaign_id: int,
    action: str,
    *,
    defaults: frozenset[str],
    default_timezone: str,
) -> Campaign:
    """``schedule``, ``pause``, ``resume`` or ``cancel``; raises :class:`CampaignStateError`.

    After a ``resume`` the caller publishes :func:`notify.delivery.enqueue.after_resume`
    (post-commit).
    """
    if action == "schedule":
        return schedule(session, campaign_id, defaults=defaults, default_timezone=default_timezone)
    transitions = {"pause": pause, "resume": resume, "cancel": cancel}
    if action not in transitions:
        raise CampaignStateError(f"unknown action {action!r}")
    return transitions[action](session, campaign_id)


# --- what beat does -------------------------------------------------------------------------


def hold_stale(session: Session, *, now: datetime, stale_after: timedelta) -> list[int]:
    """Scheduled campaigns that became due more than ``stale_after`` ago (the service was down):
    move them to ``needs_confirmation`` instead of firing hours late."""
    stale = session.scalars(
        select(Campaign.id)
        .where(Campaign.status == Status.SCHEDULED, Campaign.start_at < now - stale_after)
        .with_for_update(skip_locked=True)
    ).all()
    reason = (
        f"became due more than {int(stale_after.total_seconds())}s late; schedule it again to send"
    )
    for campaign_id in stale:
        _transition(
            session,
            campaign_id,
            (Status.SCHEDULED,),
            Status.NEEDS_CONFIRMATION,
            status_reason=reason,
        )
    return list(stale)


def start_due(session: Session, *, now: datetime) -> list[int]:
    """Claim scheduled campaigns that are due and mark them running; returns their ids.

    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL plus the status compare-and-set mean two beat or
    worker processes never start one campaign twice.
    """
    due = session.scalars(
        select(Campaign.id)
        .where(Campaign.status == Status.SCHEDULED, Campaign.start_at <= now)
        .order_by(Campaign.start_at)
        .limit(50)
        .with_for_update(skip_locked=True)
    ).all()
    return [
        campaign_id
        for campaign_id in due
        if _transition(session, campaign_id, (Status.SCHEDULED,), Status.RUNNING, started_at=now)
    ]


def running_unplanned(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Campaign.id).where(
                Campaign.status == Status.RUNNING, Campaign.planning_done.is_(False)
            )
        )
    )


def claim_ready_batches(
    session: Session,
    *,
    now: datetime,
    lost_after: timedelta,
    requeue_after: timedelta,
    campaign_id: int | None = None,
) -> list[int]:
    """Batches to publish now: due ``pending`` ones of running campaigns, ``running`` ones whose
    lease expired (``lost_after``), and ``enqueued`` ones published longer ago than
    ``requeue_after`` (a message the broker lost; long, since a backlog is not a loss). They are
    marked ``enqueued`` here; the caller publishes them after commit."""
    lost = _ready_or_lost(now, lost_after, requeue_after)
    query = (
        select(CampaignBatch.id)
        .join(Campaign, Campaign.id == CampaignBatch.campaign_id)
        .where(Campaign.status == Status.RUNNING, lost)
        .order_by(CampaignBatch.due_at)
        .limit(500)
        .with_for_update(of=CampaignBatch, skip_locked=True)
    )
    if campaign_id is not None:
        query = query.where(CampaignBatch.campaign_id == campaign_id)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(CampaignBatch)
            .where(CampaignBatch.id.in_(ids))
            .values(status=BatchStatus.ENQUEUED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids


def _ready_or_lost(
    now: datetime, lost_after: timedelta, requeue_after: timedelta
) -> ColumnElement[bool]:
    return or_(
        and_(CampaignBatch.status == BatchStatus.PENDING, CampaignBatch.due_at <= now),
        and_(
            CampaignBatch.status == BatchStatus.ENQUEUED,
            CampaignBatch.updated_at < now - requeue_after,
        ),
        and_(CampaignBatch.status == BatchStatus.RUNNING, CampaignBatch.lease_until < now),
    )


def complete_finished(session: Session, *, now: datetime) -> list[int]:
    """Running campaigns with every batch done and nothing left to plan become ``completed``."""
    open_batches = (
        select(func.count())
        .select_from(CampaignBatch)
        .where(CampaignBatch.campaign_id == Campaign.id, CampaignBatch.status != BatchStatus.DONE)
        .scalar_subquery()
    )
    finished = session.scalars(
        select(Campaign.id).where(
            Campaign.status == Status.RUNNING, Campaign.planning_done.is_(True), open_batches == 0
        )
    ).all()
    return [
        campaign_id
        for campaign_id in finished
        if _transition(session, campaign_id, (Status.RUNNING,), Status.COMPLETED, finished_at=now)
    ]


# --- progress -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    counts: dict[str, int]
    rate_per_second: float
    seconds_left: float | None
    unsubscribes: int = 0  # people who unsubscribed through a link in this campaign's mail


def suppressed_by_reason(session: Session, campaign_id: int) -> dict[str, int]:
    """Why the campaign's suppressed messages were not sent: reason -> how many."""
    rows = session.execute(
        select(Notification.reason, func.count())
        .where(
            Notification.campaign_id == campaign_id,
            Notification.status == NotificationStatus.SUPPRESSED,
        )
        .group_by(Notification.reason)
    ).all()
    return {str(reason or "unknown"): int(count) for reason, count in rows}


def sent_per_minute(
    session: Session, campaign_id: int, *, minutes: int = 30, now: datetime | None = None
) -> list[tuple[str, int]]:
    """Messages the relay accepted in each of the last ``minutes`` UTC minutes (``HH:MM``,
    oldest first; a minute with none is there with 0)."""
    now = (now or utcnow()).replace(second=0, microsecond=0)
    since = now - timedelta(minutes=minutes - 1)
    minute = utc_text(session, Notification.sent_at, "minute").label("minute")
    counted: dict[str, int] = dict(
        session.execute(
            select(minute, func.count())
            .where(Notification.campaign_id == campaign_id, Notification.sent_at >= since)
            .group_by(minute)
        ).all()
    )
    slots = [since + timedelta(minutes=n) for n in range(minutes)]
    return [
        (slot.strftime("%H:%M"), int(counted.get(slot.strftime("%Y-%m-%d %H:%M"), 0)))
        for slot in slots
    ]


def progress(
    session: Session, campaign_id: int, *, now: datetime | None = None, window: float = 60.0
) -> Progress:
    """Counts by outcome, the send rate over the last ``window`` seconds, and the time left."""
    now = now or utcnow()
    rows = session.execute(
        select(Notification.status, func.count())
        .where(Notification.campaign_id == campaign_id)
        .group_by(Notification.status)
    ).all()
    by_status = {NotificationStatus(status): int(count) for status, count in rows}
    counts = {
        "pending": sum(by_status.get(status, 0) for status in NotificationStatus.in_flight()),
        **{
            status.value: by_status.get(status, 0)
            for status in NotificationStatus
            if status not in NotificationStatus.in_flight()
        },
    }
    recent = session.scalar(
        select(func.count()).where(
            Notification.campaign_id == campaign_id,
            Notification.status == NotificationStatus.SENT,
            Notification.sent_at > now - timedelta(seconds=window),
        )
    )
    first_sent = session.scalar(
        select(func.min(Notification.sent_at)).where(
            Notification.campaign_id == campaign_id,
            Notification.sent_at > now - timedelta(seconds=window),
        )
    )
    # Over the time sending has actually run within the window, not the whole window: in a
    # campaign's first minute the rate would otherwise read low.
    elapsed = window if first_sent is None else max((now - first_sent).total_seconds(), 1.0)
    rate = float(recent or 0) / min(window, elapsed)
    left = counts["pending"] / rate if rate > 0 else None
    unsubscribes = session.scalar(  # people, not events: scope=all logs one per category
        select(func.count(func.distinct(ConsentEvent.recipient_id))).where(
            ConsentEvent.campaign_id == campaign_id, ConsentEvent.action == "unsubscribed"
        )
    )
    return Progress(
        counts=counts,
        rate_per_second=round(rate, 2),
        seconds_left=left,
        unsubscribes=int(unsubscribes or 0),
    )
