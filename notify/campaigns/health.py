"""A running campaign that draws too many complaints or hard bounces pauses itself.

Complaints and hard bounces are the consent events (sources ``complaint`` and ``bounce``) that
name the campaign: a bounce at send time, a delivery status notification or feedback report
through ``notify inbound``, an SES notification, or an API report with its notification id.
Once a campaign has sent ``NOTIFY_CAMPAIGN_PAUSE_MIN_SENT`` messages, either rate reaching its
threshold (``NOTIFY_CAMPAIGN_PAUSE_COMPLAINT_RATE``, ``…_BOUNCE_RATE``) moves it to
``needs_attention`` with the figures in its reason: no new message leaves until an operator
resumes or cancels it. Checked by each dispatch round
(``NOTIFY_CAMPAIGN_DISPATCH_INTERVAL_SECONDS``), so a campaign sends at most that long at its
rate after crossing a threshold.

Data functions take the session first and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.models import Campaign, CampaignStatus, ConsentEvent, ConsentSource, Notification
from notify.models import NotificationStatus as Sent
from notify.models.base import utcnow

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Health:
    campaign_id: int
    sent: int
    complaints: int
    bounces: int


def health_of(session: Session, campaign_ids: list[int]) -> list[Health]:
    """Sent messages, complaints and hard bounces of each campaign, counted from its
    ``health_from`` (the moment an operator last resumed it after it paused itself)."""
    if not campaign_ids:
        return []
    sent_since = Notification.sent_at >= _start(Campaign.health_from)
    sent = {
        row[0]: int(row[1])
        for row in session.execute(
            select(Notification.campaign_id, func.count())
            .join(Campaign, Campaign.id == Notification.campaign_id)
            .where(
                Notification.campaign_id.in_(campaign_ids),
                Notification.status == Sent.SENT,
                sent_since,
            )
            .group_by(Notification.campaign_id)
        )
    }

    feedback = {
        row[0]: (int(row[1] or 0), int(row[2] or 0))
        for row in session.execute(
            select(
                ConsentEvent.campaign_id,
                func.sum(case((ConsentEvent.source == ConsentSource.COMPLAINT, 1), else_=0)),
                func.sum(case((ConsentEvent.source == ConsentSource.BOUNCE, 1), else_=0)),
            )
            .join(Campaign, Campaign.id == ConsentEvent.campaign_id)
            .where(
                ConsentEvent.campaign_id.in_(campaign_ids),
                ConsentEvent.source.in_([ConsentSource.COMPLAINT, ConsentSource.BOUNCE]),
                ConsentEvent.created_at >= _start(Campaign.health_from),
            )
            .group_by(ConsentEvent.campaign_id)
        )
    }
    return [Health(key, int(sent.get(key, 0)), *feedback.get(key, (0, 0))) for key in campaign_ids]


def _start(column: Any) -> Any:
    """``health_from``, or the beginning of time for a campaign never resumed that way."""
    return func.coalesce(column, EPOCH)


def why_pause(health: Health, settings: Settings) -> str | None:
    """The reason to pause, or None while the campaign is healthy (or has sent too little)."""
    if health.sent < settings.campaign_pause_min_sent:
        return None
    for count, limit, what in (
        (health.complaints, settings.campaign_pause_complaint_rate, "complaints"),
        (health.bounces, settings.campaign_pause_bounce_rate, "hard bounces"),
    ):
        if limit > 0 and count >= limit * health.sent:
            return (
                f"paused itself: {count} {what} for {health.sent} sent messages "
                f"({count / health.sent:.2%}, the limit is {limit:.2%})"
            )
    return None


def pause_unhealthy(session: Session, settings: Settings) -> list[int]:
    """Move every running campaign over a threshold to ``needs_attention``; their ids."""
    running = list(
        session.scalars(select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING))
    )
    paused = []
    for health in health_of(session, running):
        reason = why_pause(health, settings)
        if reason is None:
            continue
        moved = session.execute(
            update(Campaign)
            .where(Campaign.id == health.campaign_id, Campaign.status == CampaignStatus.RUNNING)
            .values(
                status=CampaignStatus.NEEDS_ATTENTION, status_reason=reason, updated_at=utcnow()
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(moved, "rowcount", 0):
            paused.append(health.campaign_id)
    return paused
