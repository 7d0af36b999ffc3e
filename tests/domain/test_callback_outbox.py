"""The callbacks outbox on both engines: events written with the change, claimed once, and
retried, delivered or dead as their answer says."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from notify.models import ApiKey, CallbackEvent, CallbackEventStatus, Recipient
from notify.models.base import utcnow
from notify.producers.callbacks import delivery, events
from notify.producers.callbacks.events import EventType, NotificationChange
from tests.domain.people import endpoint


def test_events_go_to_the_sending_keys_endpoints_that_asked_for_them(session: Session) -> None:
    key_id, endpoint_id = endpoint(session, EventType.SENT)
    other_key, _ = endpoint(session, EventType.FAILED)
    changes = [
        NotificationChange("n-1", key_id, "sent"),
        NotificationChange("n-2", other_key, "sent"),  # that key asked for failures only
        NotificationChange("n-3", None, "sent"),  # a campaign's: no key
    ]
    assert events.notifications_changed(session, EventType.SENT, changes) == 1
    [event] = session.scalars(select(CallbackEvent)).all()
    assert (event.endpoint_id, event.payload["id"], event.status) == (
        endpoint_id, "n-1", CallbackEventStatus.PENDING,
    )  # fmt: skip
    key = session.get(ApiKey, key_id)
    assert key is not None
    key.revoked_at = utcnow()  # a revoked key's endpoints hear nothing more
    session.flush()
    assert events.notifications_changed(session, EventType.SENT, changes) == 0


def test_a_due_event_is_claimed_once_then_retried_delivered_or_dead(session: Session) -> None:
    key_id, _ = endpoint(session, EventType.SENT, EventType.PREFERENCE_CHANGED)
    events.notifications_changed(
        session, EventType.SENT, [NotificationChange("n-1", key_id, "sent")]
    )
    first = delivery.claim_due(session, 10, lease_seconds=60)
    assert [event.attempts for event in first] == [1]
    assert delivery.claim_due(session, 10, lease_seconds=60) == []  # held by its lease
    failed = delivery._Answer(500, "HTTP 500", 3)
    rng = random.Random(1)
    assert delivery._record(session, first[0], failed, rng) == CallbackEventStatus.PENDING
    late = delivery._Due(**{**first[0].__dict__, "give_up_at": utcnow() - timedelta(seconds=1)})
    assert delivery._record(session, late, failed, rng) == CallbackEventStatus.DEAD
    ok = delivery._Answer(200, None, 3)
    assert delivery._record(session, first[0], ok, rng) == CallbackEventStatus.DELIVERED
    recipient_id = session.execute(
        insert(Recipient).values(public_id="p-out", user_id="u-out").returning(Recipient.id)
    ).scalar_one()
    assert (
        events.preference_changed(session, recipient_id, "product_updates", "unsubscribed", "api")
        == 1
    )
    stored = session.scalars(
        select(CallbackEvent).where(CallbackEvent.type == EventType.PREFERENCE_CHANGED)
    ).one()
    assert "u-out" not in str(stored.payload)  # named only when sent
    people = events.user_ids(session, [stored.payload])
    assert (
        events.body_of(stored.type, stored.payload, stored.created_at, people)["data"]["user_id"]
        == "u-out"
    )
