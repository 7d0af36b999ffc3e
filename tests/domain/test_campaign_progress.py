"""Campaign progress on both engines: the rate is over the time sending has run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from notify.campaigns import lifecycle
from notify.models import Campaign, CampaignStatus, Notification, NotificationStatus, Recipient

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def test_five_sent_in_the_last_ten_seconds_is_half_a_message_a_second(session: Session) -> None:
    campaign = Campaign(
        name="rate", template="product_update", category="product_updates", data={},
        audience={}, status=CampaignStatus.RUNNING,
    )  # fmt: skip
    session.add(campaign)
    session.flush()
    for number in range(8):
        recipient_id = session.execute(
            insert(Recipient)
            .values(public_id=f"rate-{number}", user_id=f"rate-{number}", email="x",
                    created_at=NOW, updated_at=NOW)
            .returning(Recipient.id)
        ).scalar_one()  # fmt: skip
        sent = number < 5
        session.add(
            Notification(
                recipient_id=recipient_id, template="product_update",
                category="product_updates", data={}, campaign_id=campaign.id,
                status=NotificationStatus.SENT if sent else NotificationStatus.QUEUED,
                sent_at=NOW - timedelta(seconds=10 - 2 * number) if sent else None,
                next_attempt_at=NOW, created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
    session.flush()
    progress = lifecycle.progress(session, campaign.id, now=NOW)
    assert progress.counts["sent"] == 5 and progress.counts["pending"] == 3
    assert progress.rate_per_second == 0.5
    assert progress.seconds_left == 6.0
