"""Campaign progress on both engines: the rate is over the time sending has run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

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


def test_messages_per_minute_are_counted_by_utc_minute_on_both_engines(session: Session) -> None:
    campaign = Campaign(
        name="minutes", template="product_update", category="product_updates", data={},
        audience={}, status=CampaignStatus.RUNNING,
    )  # fmt: skip
    session.add(campaign)
    session.flush()
    # Two in 08:58, one in 08:59 (a non-UTC offset must land in its UTC minute), none in 09:00.
    sent_times = [
        NOW - timedelta(seconds=110),
        NOW - timedelta(seconds=65),
        (NOW - timedelta(seconds=30)).astimezone(timezone(timedelta(hours=5, minutes=30))),
    ]
    for number, sent_at in enumerate(sent_times):
        recipient_id = session.execute(
            insert(Recipient)
            .values(public_id=f"min-{number}", user_id=f"min-{number}", email="x",
                    created_at=NOW, updated_at=NOW)
            .returning(Recipient.id)
        ).scalar_one()  # fmt: skip
        session.add(
            Notification(
                recipient_id=recipient_id, template="product_update",
                category="product_updates", data={}, campaign_id=campaign.id,
                status=NotificationStatus.SENT, sent_at=sent_at,
                next_attempt_at=NOW, created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
    session.flush()
    minutes = lifecycle.sent_per_minute(session, campaign.id, minutes=4, now=NOW)
    assert minutes == [("08:57", 0), ("08:58", 2), ("08:59", 1), ("09:00", 0)]
