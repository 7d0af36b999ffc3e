"""A callback event that cannot be delivered: retried until its window closes, then dead, and
revived by a replay. Delivery runs in this process; no worker consumes the callbacks lane
while this module runs (``test_callbacks`` starts one for its own module only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from notify.models import CallbackEvent, CallbackEventStatus
from notify.models.base import utcnow
from notify.producers.callbacks.delivery import deliver_due, new_client
from tests.integration.test_callbacks import alert, register
from tests.support.services import wait_until
from tests.support.stack import Stack, make_key

pytestmark = pytest.mark.integration


@pytest.fixture
def producer(stack: Stack) -> dict[str, str]:
    key = make_key(stack.sessions, "notifications:send", "callbacks")
    return {"Authorization": f"Bearer {key}"}


def test_an_event_retried_past_its_window_is_dead_and_replay_revives_it(
    stack: Stack, client: TestClient, producer: dict[str, str]
) -> None:
    """Delivery called in this process, with a receiver that refuses everything. No worker
    consumes the callbacks lane while this module runs, so the attempts are all ours."""
    endpoint = register(client, producer, "http://127.0.0.1:9/refused", "notification.sent")
    alert(client, producer)

    def mine() -> CallbackEvent | None:
        with stack.sessions() as session:
            return session.scalars(
                select(CallbackEvent).where(CallbackEvent.endpoint_id == endpoint["id"])
            ).first()

    event = wait_until(mine, 30, "the event in the outbox")
    with stack.sessions.begin() as session:
        session.execute(
            update(CallbackEvent)
            .where(CallbackEvent.id == event.id)
            .values(
                # Due before any event other modules left behind (delivery takes the oldest
                # first, and theirs may each take seconds), and its window closes before the
                # next attempt.
                next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC),
                give_up_at=utcnow() + timedelta(seconds=1),
            )
        )
    with new_client(stack.settings) as http:
        deliver_due(stack.sessions, stack.settings, http, budget_seconds=5)
    dead = mine()
    assert dead is not None
    assert dead.status == CallbackEventStatus.DEAD and dead.attempts == 1
    attempts = client.get(f"/v1/callbacks/{endpoint['id']}/deliveries", headers=producer).json()
    assert attempts[0]["error"].startswith("could not connect")
    assert attempts[0]["event_status"] == "dead"
    assert client.post(
        f"/v1/callbacks/{endpoint['id']}/replay", json={"event_id": dead.id}, headers=producer
    ).json() == {"event_id": dead.id, "status": "pending"}
