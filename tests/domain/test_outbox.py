"""The transactional outbox on PostgreSQL and SQLite: accept, claim once, decide at the claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.delivery import outbox
from notify.delivery.outbox import ClaimedGroup
from notify.delivery.outcomes import UNDECRYPTABLE, Outcome, Result, record_undecryptable
from notify.delivery.sending import why_blocked
from notify.models import (
    ConsentSource,
    Notification,
    NotificationStatus,
    Recipient,
    SuppressionReason,
)
from notify.people import preferences, suppressions
from notify.people.consent import Origin
from tests.domain.people import HASH_KEY, accepted, endpoint, under_another_key

SETTINGS = Settings()
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_a_notification_is_claimed_once(session: Session) -> None:
    notification_id = accepted(session, "security_alert", "outbox-once")[0]
    job = outbox.claim(session, notification_id, sending_domain="example.test")
    assert job is not None
    assert job.attempts == 1
    assert job.email == "outbox-once@example.com"
    assert outbox.claim(session, notification_id, sending_domain="example.test") is None
    assert why_blocked(SETTINGS, job) is None


def test_an_unsubscribe_before_the_claim_suppresses_optional_mail(session: Session) -> None:
    notification_id = accepted(session, "product_update", "outbox-unsub")[0]
    job = outbox.claim(session, notification_id, sending_domain="example.test")
    assert job is not None and job.subscribed is None
    assert why_blocked(SETTINGS, job) is None  # subscribed by default
    second = accepted(session, "product_update", "outbox-unsub")[0]
    preferences.set_subscription(
        session,
        job.recipient_id,
        "product_updates",
        False,
        Origin(ConsentSource.API),
        SETTINGS.default_subscriptions,
    )
    later = outbox.claim(session, second, sending_domain="example.test")
    assert later is not None and later.subscribed is False
    assert why_blocked(SETTINGS, later) == "unsubscribed"


@pytest.mark.parametrize(
    ("reason", "security", "product"),
    [
        (SuppressionReason.HARD_BOUNCE, "bounced", "bounced"),
        (SuppressionReason.COMPLAINT, None, "complained"),
        (SuppressionReason.OPERATOR, None, "suppressed"),
    ],
)
def test_the_claim_reads_the_suppression_list(
    session: Session, reason: SuppressionReason, security: str | None, product: str | None
) -> None:
    user_id = f"outbox-{reason.value}"
    alert = accepted(session, "security_alert", user_id)[0]
    update = accepted(session, "product_update", user_id)[0]
    suppressions.suppress(
        session, HASH_KEY, f"{user_id}@example.com", reason, Origin(ConsentSource.OPERATOR)
    )
    for notification_id, expected in ((alert, security), (update, product)):
        job = outbox.claim(session, notification_id, sending_domain="example.test")
        assert job is not None
        assert why_blocked(SETTINGS, job) == expected


def test_a_group_is_claimed_in_one_statement_each_with_its_own_message_id(
    session: Session,
) -> None:
    ids = [accepted(session, "security_alert", f"group-{n}")[0] for n in range(5)]
    already = outbox.claim(session, ids[2], sending_domain="example.test")
    assert already is not None
    jobs = outbox.claim_many(
        session, [*reversed(ids), "no-such-id"], sending_domain="example.test"
    ).ready
    assert [job.id for job in jobs] == [i for i in reversed(ids) if i != ids[2]]  # order kept
    assert len({job.message_id for job in jobs} | {already.message_id}) == 5
    assert {job.email for job in jobs} == {f"group-{n}@example.com" for n in (0, 1, 3, 4)}
    assert outbox.claim_many(session, ids, sending_domain="example.test") == ClaimedGroup([], [])


@pytest.mark.parametrize("unreadable", ["the recipient's address", "the message's data"])
def test_a_row_no_data_key_decrypts_is_retried_then_failed_and_the_rest_are_claimed(
    session: Session, unreadable: str
) -> None:
    ids = [accepted(session, "security_alert", f"unreadable-{n}")[0] for n in range(3)]
    lost = ids[1]
    if unreadable == "the message's data":
        change = update(Notification).where(Notification.id == lost)
        session.execute(change.values(data=under_another_key('{"ip": "192.0.2.1"}')))
    else:
        recipient_id = session.scalar(
            select(Notification.recipient_id).where(Notification.id == lost)
        )
        change = update(Recipient).where(Recipient.id == recipient_id)
        session.execute(change.values(email=under_another_key("unreadable-1@example.com")))
    settings = Settings(max_attempts=2)

    def claim_and_record() -> Outcome:
        group = outbox.claim_many(session, ids, sending_domain="example.test")
        assert [row.id for row in group.undecryptable] == [lost]
        assert group.undecryptable[0].category == "security"
        return record_undecryptable(session, settings, group.undecryptable[0], lambda _: 60.0)

    first = claim_and_record()  # the others are claimed; the lost one is due again in 60 s
    assert (first.result, first.retry_in, first.category) == (Result.RETRY, 60.0, "security")
    assert _status(session, lost) == (NotificationStatus.QUEUED, UNDECRYPTABLE, 1)
    assert [_status(session, key)[0] for key in (ids[0], ids[2])] == [
        NotificationStatus.SENDING
    ] * 2
    last = claim_and_record()  # the second attempt of two
    assert last.result is Result.FAILED
    assert _status(session, lost) == (
        NotificationStatus.FAILED,
        f"gave up after 2 attempts: {UNDECRYPTABLE}",
        2,
    )
    key_id, _ = endpoint(session)  # its status still reads, without its data
    session.execute(update(Notification).where(Notification.id == lost).values(api_key_id=key_id))
    session.expire_all()
    found = outbox.get_for_caller(session, lost, key_id)
    assert found is not None and found.status == NotificationStatus.FAILED


def _status(session: Session, notification_id: str) -> tuple[NotificationStatus, str | None, int]:
    row = session.execute(
        select(Notification.status, Notification.reason, Notification.attempts).where(
            Notification.id == notification_id
        )
    ).one()
    return row.status, row.reason, row.attempts


def test_a_group_claim_reads_each_persons_choice_for_their_own_category(
    session: Session,
) -> None:
    update = accepted(session, "product_update", "group-choice")[0]
    alert = accepted(session, "security_alert", "group-choice")[0]
    first = outbox.claim(session, update, sending_domain="example.test")
    assert first is not None
    preferences.set_subscription(
        session,
        first.recipient_id,
        "product_updates",
        False,
        Origin(ConsentSource.API),
        SETTINGS.default_subscriptions,
    )
    again = accepted(session, "product_update", "group-choice")[0]
    jobs = {
        job.category: job
        for job in outbox.claim_many(session, [again, alert], sending_domain="example.test").ready
    }
    assert why_blocked(SETTINGS, jobs["product_updates"]) == "unsubscribed"
    assert why_blocked(SETTINGS, jobs["security"]) is None


def test_sent_and_given_back_apply_only_to_rows_still_sending(session: Session) -> None:
    ids = [accepted(session, "security_alert", f"group-end-{n}")[0] for n in range(4)]
    jobs = outbox.claim_many(session, ids, sending_domain="example.test").ready
    accepted_at = {ids[0]: NOW, ids[1]: NOW + timedelta(seconds=1)}
    assert outbox.mark_sent_many(session, accepted_at) == 2
    assert outbox.mark_sent_many(session, accepted_at) == 0  # no longer sending
    rows = session.execute(
        select(Notification.id, Notification.sent_at).where(Notification.id.in_(ids[:2]))
    )
    sent_at = {str(row[0]): row[1] for row in rows}
    assert {key: value.replace(tzinfo=None) for key, value in sent_at.items()} == {
        key: value.replace(tzinfo=None) for key, value in accepted_at.items()
    }  # each the time the relay accepted it
    assert outbox.release(session, ids[1:]) == 2  # the sent one is left alone
    again = outbox.claim_many(session, ids, sending_domain="example.test").ready
    assert [job.id for job in again] == ids[2:]
    assert [job.attempts for job in again] == [1, 1]  # a give-back does not count an attempt
    assert [job.message_id for job in again] == [job.message_id for job in jobs[2:]]
