"""The transactional outbox on PostgreSQL and SQLite: accept, claim once, decide at the claim."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.delivery import outbox
from notify.delivery.outbox import NotificationRequest
from notify.delivery.sending import why_blocked
from notify.message.templates import get_template
from notify.models import ConsentSource, SuppressionReason
from notify.people import preferences, suppressions
from notify.people.consent import Origin

SETTINGS = Settings()
HASH_KEY = "domain-test-hash-key"


def _accept(session: Session, template: str, user_id: str) -> str:
    request = NotificationRequest(
        template=template,
        user_id=user_id,
        email=f"{user_id}@example.com",
        data=dict(get_template(template).sample),
    )
    accepted = outbox.submit(session, None, request, max_data_bytes=16_384, hash_key=HASH_KEY)
    assert accepted.created
    return accepted.id


def test_a_notification_is_claimed_once(session: Session) -> None:
    notification_id = _accept(session, "security_alert", "outbox-once")
    job = outbox.claim(session, notification_id, sending_domain="example.test")
    assert job is not None
    assert job.attempts == 1
    assert job.email == "outbox-once@example.com"
    assert outbox.claim(session, notification_id, sending_domain="example.test") is None
    assert why_blocked(SETTINGS, job) is None


def test_an_unsubscribe_before_the_claim_suppresses_optional_mail(session: Session) -> None:
    notification_id = _accept(session, "product_update", "outbox-unsub")
    job = outbox.claim(session, notification_id, sending_domain="example.test")
    assert job is not None and job.subscribed is None
    assert why_blocked(SETTINGS, job) is None  # subscribed by default
    second = _accept(session, "product_update", "outbox-unsub")
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
    alert = _accept(session, "security_alert", user_id)
    update = _accept(session, "product_update", user_id)
    suppressions.suppress(
        session, HASH_KEY, f"{user_id}@example.com", reason, Origin(ConsentSource.OPERATOR)
    )
    for notification_id, expected in ((alert, security), (update, product)):
        job = outbox.claim(session, notification_id, sending_domain="example.test")
        assert job is not None
        assert why_blocked(SETTINGS, job) == expected
