"""A running campaign pauses itself when complaints or hard bounces reach their threshold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from notify.campaigns import health, lifecycle
from notify.config import Settings
from notify.models import (
    Campaign,
    CampaignStatus,
    ConsentEvent,
    ConsentSource,
    Notification,
    NotificationStatus,
    Recipient,
)

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
SETTINGS = Settings(campaign_pause_min_sent=100)  # complaints 0.3 %, hard bounces 5 %


def running_campaign(session: Session, sent: int, complaints: int, bounces: int) -> Campaign:
    campaign = Campaign(
        name="health", template="product_update", category="product_updates", data={},
        audience={}, status=CampaignStatus.RUNNING, started_at=NOW,
    )  # fmt: skip
    session.add(campaign)
    session.flush()
    for number in range(sent):
        recipient_id = session.execute(
            insert(Recipient)
            .values(public_id=f"h{campaign.id}-{number}", user_id=f"h{campaign.id}-{number}",
                    email="x", created_at=NOW, updated_at=NOW)
            .returning(Recipient.id)
        ).scalar_one()  # fmt: skip
        session.add(
            Notification(
                recipient_id=recipient_id, template="product_update", category="product_updates",
                data={}, campaign_id=campaign.id, status=NotificationStatus.SENT, sent_at=NOW,
                next_attempt_at=NOW, created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
    for source, count in ((ConsentSource.COMPLAINT, complaints), (ConsentSource.BOUNCE, bounces)):
        for _ in range(count):
            session.add(
                ConsentEvent(
                    recipient_id=None, category="*", action=f"suppressed:{source}",
                    source=source, campaign_id=campaign.id, created_at=NOW,
                )
            )  # fmt: skip
    session.flush()
    return campaign


@pytest.mark.parametrize(
    ("sent", "complaints", "bounces", "paused"),
    [
        (200, 0, 0, False),
        (200, 1, 9, True),  # one complaint in 200 is 0.5 %, over 0.3 %
        (99, 5, 50, False),  # too few sent to judge
        (200, 0, 10, True),  # 5 % hard bounces
        (1000, 3, 0, True),  # 0.3 % complaints
        (1000, 2, 49, False),
    ],
)
def test_a_campaign_over_a_threshold_needs_attention_and_resumes_by_hand(
    session: Session, sent: int, complaints: int, bounces: int, paused: bool
) -> None:
    campaign = running_campaign(session, sent, complaints, bounces)
    moved = health.pause_unhealthy(session, SETTINGS)
    session.refresh(campaign)
    assert (campaign.id in moved) is paused
    if not paused:
        assert campaign.status == CampaignStatus.RUNNING and campaign.status_reason is None
        return
    assert campaign.status == CampaignStatus.NEEDS_ATTENTION
    assert campaign.status_reason is not None and "paused itself" in campaign.status_reason
    assert health.pause_unhealthy(session, SETTINGS) == []  # once
    lifecycle.resume(session, campaign.id)
    session.refresh(campaign)
    assert campaign.status == CampaignStatus.RUNNING and campaign.status_reason is None
    # What made it pause is not held against it again: it is judged from the resume on.
    assert campaign.health_from is not None
    assert health.pause_unhealthy(session, SETTINGS) == []
    session.refresh(campaign)
    assert campaign.status == CampaignStatus.RUNNING


def test_a_threshold_of_zero_never_pauses(session: Session) -> None:
    campaign = running_campaign(session, 100, 50, 50)
    off = Settings(
        campaign_pause_min_sent=1, campaign_pause_complaint_rate=0, campaign_pause_bounce_rate=0
    )
    assert health.pause_unhealthy(session, off) == []
    assert health.health_of(session, [campaign.id]) == [health.Health(campaign.id, 100, 50, 50)]
