"""The scanner guard end to end: real PostgreSQL, Redis, a Celery worker process and aiosmtpd.
A burst of presses of the unsubscribe page's button from one network, seconds after delivery,
is flagged and its network held; a mail client's one-click POST from there is still honoured;
the person held is asked to confirm, and a confirmed press is honoured. The stats tell
suspected from confirmed. A trickle below the threshold changes nothing.

The app under test has low thresholds of its own and a client address no other test uses (the
shared stack sets them out of reach, since every test presses from one address)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from notify.message.tokens import read_unsubscribe_token, unsubscribe_token
from notify.models import Recipient, ScannerHold
from notify.people.scanner_guard import source_of
from notify.web.app import create_app
from tests.support.stack import Stack, new_person, send, wait_for_status

pytestmark = pytest.mark.integration
PER_NETWORK = 4


@pytest.fixture
def scanner(stack: Stack) -> Iterator[tuple[TestClient, str]]:
    """A client at an address of its own, on an app with a burst at PER_NETWORK presses."""
    address = f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
    settings = stack.settings.model_copy(
        update={"scanner_burst_per_network": PER_NETWORK, "scanner_burst_per_domain": 100_000}
    )
    with TestClient(
        create_app(settings), raise_server_exceptions=False, client=(address, 40000)
    ) as client:
        yield client, address
    key = source_of(stack.settings.hash_key, address, None).network_key
    with stack.sessions.begin() as session:
        session.execute(delete(ScannerHold).where(ScannerHold.source_key == key))


def _people(stack: Stack, client: TestClient, auth: dict[str, str], count: int) -> list[str]:
    """People who each just got a product update; their unsubscribe paths."""
    paths = []
    for _ in range(count):
        user_id = new_person(client, auth, "scan")
        wait_for_status(stack, send(client, auth, user_id, "product_update"), "sent")
        with stack.sessions() as session:
            public_id = session.scalar(
                select(Recipient.public_id).where(Recipient.user_id == user_id)
            )
        token = unsubscribe_token(stack.settings.secret_key_list, str(public_id), "product_updates")
        paths.append(f"/u/{token}")
    return paths


def _consent(client: TestClient, auth: dict[str, str], user_id: str) -> list[str]:
    return [e["action"] for e in client.get(f"/v1/users/{user_id}/consent", headers=auth).json()]


def _user_of(stack: Stack, path: str) -> str:
    link = read_unsubscribe_token(stack.settings.secret_key_list, path.removeprefix("/u/"))
    assert link is not None
    with stack.sessions() as session:
        user_id = session.scalar(
            select(Recipient.user_id).where(Recipient.public_id == link.public_id)
        )
    return str(user_id)


def test_a_burst_is_flagged_held_and_a_person_can_still_confirm(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    scanner: tuple[TestClient, str],
) -> None:
    pressing, _ = scanner
    paths = _people(stack, client, auth, PER_NETWORK + 2)
    burst, held, one_click = paths[:PER_NETWORK], paths[PER_NETWORK], paths[PER_NETWORK + 1]
    for path in burst:  # honoured at once, then found to be a burst at the last one
        answer = pressing.post(path, data={"via": "page"})
        assert answer.status_code == 200 and "Please confirm" not in answer.text
    for path in burst:
        actions = _consent(client, auth, _user_of(stack, path))
        assert actions[:2] == ["suspected_automated", "unsubscribed"]  # newest first

    asked = pressing.post(held, data={"via": "page"})
    assert asked.status_code == 200 and "Please confirm" in asked.text
    assert 'name="confirm"' in asked.text
    held_user = _user_of(stack, held)
    assert _consent(client, auth, held_user) == ["held_for_confirmation"]
    prefs = client.get(f"/v1/users/{held_user}/preferences", headers=auth).json()
    assert prefs["categories"]["product_updates"]["subscribed"] is True  # nothing changed

    # A mail client's RFC 8058 POST from the held network is honoured at once.
    posted = pressing.post(
        one_click,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200 and "Please confirm" not in posted.text
    assert _consent(client, auth, _user_of(stack, one_click)) == ["unsubscribed"]

    confirmed = pressing.post(held, data={"via": "page", "confirm": "yes"})
    assert confirmed.status_code == 200 and "Please confirm" not in confirmed.text
    prefs = client.get(f"/v1/users/{held_user}/preferences", headers=auth).json()
    assert prefs["categories"]["product_updates"]["subscribed"] is False

    today = datetime.now(UTC).date()
    stats = client.get(f"/v1/stats?from={today}&to={today}", headers=auth).json()
    page_route = next(
        row
        for row in stats["unsubscribes"]
        if row["route"] == "page" and row["category"] == "product_updates"
    )
    assert page_route["suspected"] >= PER_NETWORK
    assert page_route["confirmed"] == page_route["count"] - page_route["suspected"]
    assert page_route["confirmed"] >= 1  # the person who confirmed


def test_a_trickle_below_the_threshold_is_honoured_and_never_flagged(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    scanner: tuple[TestClient, str],
) -> None:
    pressing, _ = scanner
    for path in _people(stack, client, auth, PER_NETWORK - 1):
        answer = pressing.post(path, data={"via": "page"})
        assert answer.status_code == 200 and "Please confirm" not in answer.text
        assert _consent(client, auth, _user_of(stack, path)) == ["unsubscribed"]


def test_presses_arriving_together_still_make_a_burst(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    scanner: tuple[TestClient, str],
) -> None:
    """A scanner presses in parallel: each press counts the others (PostgreSQL takes a lock per
    source), so the burst is seen and every press of it flagged."""
    pressing, _ = scanner
    paths = _people(stack, client, auth, PER_NETWORK)
    start = threading.Barrier(len(paths))

    def press(path: str) -> int:
        start.wait()
        return pressing.post(path, data={"via": "page"}).status_code

    with ThreadPoolExecutor(len(paths)) as pool:
        assert list(pool.map(press, paths)) == [200] * len(paths)
    for path in paths:
        actions = _consent(client, auth, _user_of(stack, path))
        assert sorted(actions) == ["suspected_automated", "unsubscribed"], actions
