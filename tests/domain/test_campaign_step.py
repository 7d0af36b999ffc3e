"""The campaign send step (notify.campaigns.batches) on PostgreSQL and SQLite, statement by
statement, without a worker: the same Core statements run on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from notify.campaigns import batches
from notify.campaigns.batches import BatchScope
from notify.config import Settings
from notify.delivery import outbox
from notify.delivery.outcomes import UNDECRYPTABLE, Result, record_undecryptable
from notify.models import (
    BatchStatus,
    Campaign,
    CampaignBatch,
    CampaignStatus,
    Notification,
    NotificationStatus,
    Preference,
    Recipient,
    Suppression,
    SuppressionReason,
)
from tests.domain.people import under_another_key

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
CATEGORY = "product_updates"
DEFAULTS = frozenset({CATEGORY})
DOMAIN = "mail.notify.example"


def _person(session: Session, number: int) -> int:
    return int(
        session.execute(
            insert(Recipient)
            .values(
                public_id=f"step-{number}",
                user_id=f"step-user-{number}",
                email=f"step{number}@example.com",
                email_hash=f"step-hash-{number}",
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(Recipient.id)
        ).scalar_one()
    )


def _campaign_with_batch(session: Session, people: int) -> tuple[int, int, list[str]]:
    campaign = Campaign(
        name="step",
        template="product_update",
        category=CATEGORY,
        data={},
        audience={},
        status=CampaignStatus.RUNNING,
    )
    session.add(campaign)
    session.flush()
    batch = CampaignBatch(campaign_id=campaign.id, batch_no=1, due_at=NOW)
    session.add(batch)
    session.flush()
    ids = []
    for number in range(people):
        row = Notification(
            recipient_id=_person(session, number),
            template="product_update",
            category=CATEGORY,
            data={},
            campaign_id=campaign.id,
            batch_id=batch.id,
            next_attempt_at=NOW,
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(row)
        session.flush()
        ids.append(row.id)
    return campaign.id, batch.id, ids


def _status(session: Session, notification_id: str) -> tuple[NotificationStatus, str | None]:
    row = session.execute(
        select(Notification.status, Notification.reason).where(Notification.id == notification_id)
    ).one()
    return row[0], row[1]


def _leased(session: Session, people: int = 3) -> tuple[BatchScope, list[str]]:
    campaign_id, batch_id, ids = _campaign_with_batch(session, people)
    held = batches.claim_batch(session, batch_id, now=NOW, lease=timedelta(seconds=60))
    assert held is not None
    assert held == (campaign_id, 1)
    return BatchScope(batch_id, held[1], campaign_id, CATEGORY, DEFAULTS), ids


def test_a_held_lease_cannot_be_claimed_twice(session: Session) -> None:
    scope, _ = _leased(session)
    again = batches.claim_batch(session, scope.batch_id, now=NOW, lease=timedelta(seconds=60))
    assert again is None
    later = NOW + timedelta(seconds=61)  # the lease expired: a new holder, a new fence
    taken = batches.claim_batch(session, scope.batch_id, now=later, lease=timedelta(seconds=60))
    assert taken == (scope.campaign_id, 2)


def test_claim_message_claims_once_with_a_message_id(session: Session) -> None:
    scope, ids = _leased(session)
    claimed = batches.claim_message(session, scope, ids[0], DOMAIN, NOW)
    assert claimed is not None
    attempts, message_id = claimed
    assert attempts == 1
    assert message_id.endswith(f"@{DOMAIN}>")
    assert _status(session, ids[0])[0] is NotificationStatus.SENDING
    assert outbox.mark_sent(session, ids[0])
    assert batches.claim_message(session, scope, ids[0], DOMAIN, NOW) is None
    assert batches.why_unclaimed(session, scope, ids[0], NOW) == batches.Refusal(None, None)


def test_a_paused_campaign_stops_the_batch_before_the_next_message(session: Session) -> None:
    scope, ids = _leased(session)
    session.execute(
        update(Campaign)
        .where(Campaign.id == scope.campaign_id)
        .values(status=CampaignStatus.PAUSED)
    )
    assert batches.claim_message(session, scope, ids[0], DOMAIN, NOW) is None
    assert batches.why_unclaimed(session, scope, ids[0], NOW) == batches.Refusal("paused", None)
    assert _status(session, ids[0])[0] is NotificationStatus.QUEUED


def test_a_lost_lease_stops_the_old_holder(session: Session) -> None:
    scope, ids = _leased(session)
    later = NOW + timedelta(seconds=61)
    batches.claim_batch(session, scope.batch_id, now=later, lease=timedelta(seconds=60))
    assert batches.claim_message(session, scope, ids[0], DOMAIN, later) is None
    assert batches.why_unclaimed(session, scope, ids[0], NOW).stop == "lease lost"


def test_an_unsubscribe_mid_batch_is_honoured_at_the_claim(session: Session) -> None:
    scope, ids = _leased(session)
    recipient_id = session.scalar(
        select(Notification.recipient_id).where(Notification.id == ids[1])
    )
    session.add(
        Preference(recipient_id=recipient_id, category=CATEGORY, subscribed=False, source="api")
    )
    session.flush()
    assert batches.claim_message(session, scope, ids[1], DOMAIN, NOW) is None
    refusal = batches.why_unclaimed(session, scope, ids[1], NOW)
    assert refusal == batches.Refusal(None, "unsubscribed")
    assert outbox.suppress_unsent(session, ids[1], "unsubscribed")
    assert _status(session, ids[1]) == (NotificationStatus.SUPPRESSED, "unsubscribed")
    assert batches.claim_message(session, scope, ids[2], DOMAIN, NOW) is not None


def test_a_recipient_no_data_key_decrypts_is_claimed_with_the_batch_and_retried(
    session: Session,
) -> None:
    scope, ids = _leased(session)
    recipient_id = session.scalar(
        select(Notification.recipient_id).where(Notification.id == ids[1])
    )
    session.execute(
        update(Recipient)
        .where(Recipient.id == recipient_id)
        .values(first_name=under_another_key("Ada"))
    )

    rows = batches._due_rows(session, scope.batch_id, NOW)

    assert [(row.id, row.readable) for row in rows] == [
        (ids[0], True),
        (ids[1], False),
        (ids[2], True),
    ]
    assert rows[0].email == "step0@example.com" and rows[1].email == ""
    assert _status(session, ids[1]) == (NotificationStatus.QUEUED, None)  # read, not written
    claimed = batches.claim_messages(session, scope, ids, DOMAIN, NOW)
    assert set(claimed) == set(ids)
    lost = outbox.Undecryptable(ids[1], CATEGORY, claimed[ids[1]][0])
    outcome = record_undecryptable(session, Settings(), lost, lambda _: 30.0)
    assert (outcome.result, outcome.retry_in) == (Result.RETRY, 30.0)
    assert _status(session, ids[1]) == (NotificationStatus.QUEUED, UNDECRYPTABLE)


def test_suppress_ineligible_marks_each_blocked_row_with_its_reason(session: Session) -> None:
    scope, ids = _leased(session, people=4)
    people = dict(
        session.execute(
            select(Notification.id, Notification.recipient_id).where(Notification.id.in_(ids))
        ).all()
    )
    session.add(
        Preference(recipient_id=people[ids[0]], category=CATEGORY, subscribed=False, source="api")
    )
    session.add(Suppression(address_hash="step-hash-1", reason=SuppressionReason.HARD_BOUNCE))
    session.add(Suppression(address_hash="step-hash-2", reason=SuppressionReason.COMPLAINT))
    session.flush()
    suppressed = batches.suppress_ineligible(session, scope, NOW)
    assert suppressed == {ids[0]: "unsubscribed", ids[1]: "bounced", ids[2]: "complained"}
    assert _status(session, ids[0]) == (NotificationStatus.SUPPRESSED, "unsubscribed")
    assert _status(session, ids[1]) == (NotificationStatus.SUPPRESSED, "bounced")
    assert _status(session, ids[2]) == (NotificationStatus.SUPPRESSED, "complained")
    assert _status(session, ids[3]) == (NotificationStatus.QUEUED, None)


def test_finishing_a_batch_with_rows_left_makes_it_pending_again(session: Session) -> None:
    scope, ids = _leased(session, people=2)
    batches.claim_message(session, scope, ids[0], DOMAIN, NOW)
    outbox.mark_sent(session, ids[0])
    batches._finish_batch(session, scope.batch_id, NOW, scope.fence)
    status = session.scalar(select(CampaignBatch.status).where(CampaignBatch.id == scope.batch_id))
    assert status is BatchStatus.PENDING
    batches.claim_batch(session, scope.batch_id, now=NOW, lease=timedelta(seconds=60))
    scope2 = BatchScope(scope.batch_id, 2, scope.campaign_id, CATEGORY, DEFAULTS)
    batches.claim_message(session, scope2, ids[1], DOMAIN, NOW)
    outbox.mark_sent(session, ids[1])
    batches._finish_batch(session, scope.batch_id, NOW, scope2.fence)
    status = session.scalar(select(CampaignBatch.status).where(CampaignBatch.id == scope.batch_id))
    assert status is BatchStatus.DONE


def test_renewing_a_lease_needs_the_fence(session: Session) -> None:
    scope, _ = _leased(session)
    assert batches.renew_lease(session, scope, NOW + timedelta(seconds=120))
    later = NOW + timedelta(seconds=121)
    batches.claim_batch(session, scope.batch_id, now=later, lease=timedelta(seconds=60))
    assert not batches.renew_lease(session, scope, later + timedelta(seconds=60))


def test_a_group_is_claimed_in_one_statement_and_a_blocked_person_is_left_out(
    session: Session,
) -> None:
    scope, ids = _leased(session, people=4)
    recipient_id = session.scalar(
        select(Notification.recipient_id).where(Notification.id == ids[2])
    )
    session.add(
        Preference(recipient_id=recipient_id, category=CATEGORY, subscribed=False, source="api")
    )
    session.flush()
    claimed = batches.claim_messages(session, scope, ids, DOMAIN, NOW)
    assert set(claimed) == {ids[0], ids[1], ids[3]}
    assert len({message_id for _, message_id in claimed.values()}) == 3
    assert batches.claim_messages(session, scope, ids, DOMAIN, NOW) == {
        key: (2, message_id) for key, (_, message_id) in claimed.items()
    }  # still in flight: a later holder may claim again, keeping the Message-ID
    assert batches.why_unclaimed(session, scope, ids[2], NOW) == batches.Refusal(
        None, "unsubscribed"
    )


def test_a_paused_campaign_claims_none_of_a_group(session: Session) -> None:
    scope, ids = _leased(session)
    session.execute(
        update(Campaign)
        .where(Campaign.id == scope.campaign_id)
        .values(status=CampaignStatus.PAUSED)
    )
    assert batches.claim_messages(session, scope, ids, DOMAIN, NOW) == {}


@pytest.mark.parametrize(
    ("commit_every", "per_second", "expected"),
    [(20, None, 20), (1, None, 1), (20, 1000.0, 20), (20, 30.0, 7), (20, 2.0, 1), (1, 30.0, 1)],
)
def test_a_group_is_at_most_commit_every_and_a_quarter_second_of_the_rate(
    commit_every: int, per_second: float | None, expected: int
) -> None:
    assert batches.group_size(commit_every, per_second) == expected


def test_untried_rows_are_given_back_only_while_the_lease_is_still_ours(session: Session) -> None:
    scope, ids = _leased(session)
    assert set(batches.claim_messages(session, scope, ids, DOMAIN, NOW)) == set(ids)
    assert batches.release_untried(session, scope, ids[:1]) == 1
    assert _status(session, ids[0])[0] is NotificationStatus.QUEUED
    later = NOW + timedelta(seconds=61)  # another holder takes the batch over
    assert batches.claim_batch(session, scope.batch_id, now=later, lease=timedelta(seconds=60))
    assert batches.release_untried(session, scope, ids[1:]) == 0  # theirs now
    assert _status(session, ids[1])[0] is NotificationStatus.SENDING
