"""PostgreSQL stops right after the relay accepted a message, for 15 s, while alerts flow:
the accepted message is recorded once the database is back, and nothing is sent twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from notify.models import Notification, NotificationStatus
from tests.faults.conftest import FaultStack
from tests.support.services import wait_until
from tests.support.stack import sample_data

ALERTS = 40
OUTAGE_SECONDS = 15.0
STOP_AT_MESSAGE = 10


def _stop_database_during_data(stack: FaultStack, stopped: threading.Event) -> None:
    """Make the SMTP server stop PostgreSQL while it holds a message, before its 250."""
    handler = stack.smtp.handler
    original = handler.handle_DATA
    assert stack.postgres is not None
    postgres = stack.postgres

    async def handle_data(server: Any, session: Any, envelope: Any) -> str:
        with handler.lock:
            count = len(handler.received)
        # At or past: two connections can read the same count before either message is added,
        # and an exact match could then be stepped over (the outage never happened).
        if count + 1 >= STOP_AT_MESSAGE and not stopped.is_set():
            stopped.set()
            postgres.stop("immediate")
            threading.Timer(OUTAGE_SECONDS, postgres.start).start()
        reply: str = await original(server, session, envelope)
        return reply

    handler.handle_DATA = handle_data  # type: ignore[method-assign]


def test_an_outage_after_the_relay_accepted_keeps_the_outcome_and_sends_once(
    database_fault_stack: FaultStack,
) -> None:
    stack = database_fault_stack
    stopped = threading.Event()
    _stop_database_during_data(stack, stopped)
    addresses = []
    unavailable = 0
    number = 0
    # At least ALERTS requests, and on until one has met the outage: the outage starts when the
    # worker delivers the tenth message, which a busy machine may reach only after ALERTS.
    deadline = time.monotonic() + 90
    while (number < ALERTS or unavailable == 0) and time.monotonic() < deadline:
        number += 1
        address = f"outage-{number}@example.com"
        response = stack.client.post(
            "/v1/notifications",
            json={
                "template": "security_alert",
                "user_id": f"outage-{number}",
                "email": address,
                "data": sample_data("security_alert"),
            },
            headers=stack.auth,
        )
        if response.status_code == 503:  # the database is down: the producer tries again
            assert int(response.headers["Retry-After"]) > 0
            unavailable += 1
            time.sleep(1)
            continue
        assert response.status_code == 202, response.text
        addresses.append(address)
        time.sleep(0.05)
    assert stopped.is_set(), "the outage never happened"
    assert unavailable > 0, "no request met the outage"

    def all_ended() -> bool:
        try:
            with stack.sessions() as session:
                open_rows = session.scalar(
                    select(func.count()).where(
                        Notification.status.in_(NotificationStatus.in_flight())
                    )
                )
        except Exception:  # the database may still be coming back
            return False
        return open_rows == 0

    wait_until(all_ended, 120, "every notification to end")
    time.sleep(2)  # a re-send would land now
    with stack.smtp.handler.lock:
        deliveries = Counter(a for m in stack.smtp.handler.received for a in m.rcpt_tos)
    assert set(deliveries) == set(addresses)
    assert {a: n for a, n in deliveries.items() if n > 1} == {}
    with stack.sessions() as session:
        attempts = session.scalars(select(Notification.attempts)).all()
    assert max(attempts) == 1
