"""The callbacks outbox on both engines: events written with the change, claimed once, and
retried, delivered or dead as their answer says."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.models import (
    ApiKey,
    CallbackAttempt,
    CallbackEndpoint,
    CallbackEvent,
    CallbackEventStatus,
    Recipient,
)
from notify.models.base import utcnow
from notify.producers.callbacks import delivery, events
from notify.producers.callbacks.events import EventType, NotificationChange
from tests.domain.people import endpoint, under_another_key


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


def test_a_batch_is_claimed_oldest_due_first_whatever_order_the_rows_were_written_in(
    session: Session,
) -> None:
    """A batch that runs out of time gives back what it has not reached, so the order is
    what decides which events wait."""
    key_id, _ = endpoint(session, EventType.SENT)
    changes = [NotificationChange(f"n-{n}", key_id, "sent") for n in range(6)]
    assert events.notifications_changed(session, EventType.SENT, changes) == 6
    written = session.scalars(select(CallbackEvent.id).order_by(CallbackEvent.id)).all()
    due_order = [*reversed(written[3:]), *written[:3]]  # not the order they were written in
    now = utcnow()
    for age, event_id in enumerate(reversed(due_order)):
        session.execute(
            update(CallbackEvent)
            .where(CallbackEvent.id == event_id)
            .values(next_attempt_at=now - timedelta(minutes=1 + age))
        )
    claimed = delivery.claim_due(session, 10, lease_seconds=60)
    assert [event.id for event in claimed] == due_order


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


def test_an_endpoint_whose_secrets_no_data_key_decrypts_is_retried_and_the_others_go_on(
    own_sessions: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Both endpoints point at a closed loopback port: the readable one is tried (and refused),
    the unreadable one is not tried at all, and both are due again."""
    with own_sessions.begin() as session:
        readable_key, readable = endpoint(session, EventType.SENT)
        lost_key, lost = endpoint(session, EventType.SENT)
        session.execute(
            update(CallbackEndpoint).values(url="http://127.0.0.1:9/hook")
        )  # refused at once
        session.execute(
            update(CallbackEndpoint)
            .where(CallbackEndpoint.id == lost)
            .values(secrets=under_another_key('{"secrets": ["whsec_dGVzdA=="]}'))
        )
        targets = delivery._targets(session, {readable, lost})
        assert targets[lost].secrets is None and targets[lost].live
        assert targets[readable].secrets == ["whsec_dGVzdA=="]
        events.notifications_changed(
            session,
            EventType.SENT,
            [
                NotificationChange("n-lost", lost_key, "sent"),
                NotificationChange("n-readable", readable_key, "sent"),
            ],
        )
    with httpx.Client() as client:
        report = delivery.deliver_due(
            own_sessions, Settings(env="development"), client, budget_seconds=10
        )
    assert (report.delivered, report.retrying, report.dead) == (0, 2, 0)
    with own_sessions() as session:
        tried = dict(
            session.execute(select(CallbackAttempt.endpoint_id, CallbackAttempt.error)).all()
        )
        due = session.execute(select(CallbackEvent.status, CallbackEvent.attempts)).all()
    assert tried[lost] == delivery.UNREADABLE_SECRETS
    assert str(tried[readable]).startswith("could not connect")
    assert due == [(CallbackEventStatus.PENDING, 1)] * 2
    [logged] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert f"callback endpoint {lost}: no data key" in logged.getMessage()
