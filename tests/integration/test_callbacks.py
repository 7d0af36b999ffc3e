"""Status callbacks on the real stack: the API, PostgreSQL, Redis, the shared worker for mail
and a Celery worker of their own for the callbacks lane, a real HTTP receiver on loopback and
the SMTP server. Signatures are checked with the Standard Webhooks reference library."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks import Webhook

from notify.message.links import unsubscribe_url
from notify.models import Recipient
from tests.support.services import WorkerProcess, wait_until
from tests.support.stack import Stack, make_key, sample_data, send_alert

pytestmark = pytest.mark.integration


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server on loopback: ``/ok`` answers 200, ``/flaky`` 500 on the first delivery of
    each event and 200 after, ``/hang`` holds each request until ``release`` is set."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [item for item in self.received if item.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            item = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
            )
            with receiver.lock:
                receiver.received.append(item)
                first = item.headers.get("webhook-id", "") not in receiver.seen
                receiver.seen.add(item.headers.get("webhook-id", ""))
            if self.path == "/hang":
                receiver.release.wait(60)
            status = 500 if self.path == "/flaky" and first else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()


@pytest.fixture(scope="module")
def callbacks_worker(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A worker for the callbacks lane only (the stack's worker and its beat do not consume it),
    with a short timeout, so a hanging receiver is given up on within the test."""
    env = {**stack.env, "NOTIFY_CALLBACK_TIMEOUT_SECONDS": "3"}
    worker = WorkerProcess(
        env, tmp_path_factory.mktemp("callbacks") / "worker.log", "callbacks", beat=False
    )
    worker.start()
    yield
    worker.stop()


@pytest.fixture
def producer(stack: Stack) -> dict[str, str]:
    key = make_key(
        stack.sessions, "notifications:send", "callbacks", "users:write", "preferences:read"
    )
    return {"Authorization": f"Bearer {key}"}


def register(client: TestClient, auth: dict[str, str], url: str, *events: str) -> dict[str, Any]:
    answer = client.post("/v1/callbacks", json={"url": url, "events": list(events)}, headers=auth)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    assert created["secret"].startswith("whsec_")
    return created


def alert(client: TestClient, auth: dict[str, str]) -> tuple[str, str]:
    return send_alert(client, auth, "cb")


def events_for(receiver: Receiver, path: str, notification_id: str) -> list[Received]:
    return [
        item
        for item in receiver.at(path)
        if json.loads(item.body)["data"].get("id") == notification_id
    ]


def test_a_sent_notification_is_reported_signed_with_ids_and_never_the_address(
    stack: Stack,
    client: TestClient,
    producer: dict[str, str],
    receiver: Receiver,
    callbacks_worker: None,
) -> None:
    endpoint = register(client, producer, receiver.url("/ok"), "notification.sent")
    notification_id, user_id = alert(client, producer)
    [item] = wait_until(lambda: events_for(receiver, "/ok", notification_id), 30, "the callback")
    Webhook(endpoint["secret"]).verify(item.body, item.headers)  # raises unless it verifies
    event = json.loads(item.body)
    assert event["type"] == "notification.sent"
    assert event["data"]["status"] == "sent" and event["data"]["template"] == "security_alert"
    assert user_id not in item.body.decode() and "@" not in item.body.decode()
    assert item.headers["webhook-id"].startswith("msg_")
    # The worker records the attempt once the receiver has answered: a moment after it got it.
    deliveries = wait_until(
        lambda: client.get(f"/v1/callbacks/{endpoint['id']}/deliveries", headers=producer).json(),
        10,
        "the attempt to be recorded",
    )
    assert deliveries[0]["event_id"] == item.headers["webhook-id"]
    assert (deliveries[0]["status_code"], deliveries[0]["event_status"]) == (200, "delivered")
    # Another key sees none of it.
    other = {"Authorization": f"Bearer {make_key(stack.sessions, 'callbacks')}"}
    assert client.get(f"/v1/callbacks/{endpoint['id']}", headers=other).status_code == 404
    assert client.get("/v1/callbacks", headers=other).json() == []


def test_a_receiver_that_answers_500_gets_the_event_once_more_with_the_same_id(
    client: TestClient, producer: dict[str, str], receiver: Receiver, callbacks_worker: None
) -> None:
    endpoint = register(client, producer, receiver.url("/flaky"), "notification.sent")
    notification_id, _ = alert(client, producer)
    twice = wait_until(
        lambda: (
            (found := events_for(receiver, "/flaky", notification_id)) and len(found) >= 2 and found
        ),
        60,
        "the event again after a 500",
    )
    time.sleep(1)  # nothing more comes after the 200
    assert len(events_for(receiver, "/flaky", notification_id)) == 2
    assert twice[0].headers["webhook-id"] == twice[1].headers["webhook-id"]
    attempts = client.get(f"/v1/callbacks/{endpoint['id']}/deliveries", headers=producer).json()
    mine = [row for row in attempts if row["event_id"] == twice[0].headers["webhook-id"]]
    assert [row["status_code"] for row in mine] == [200, 500]  # newest first
    assert mine[1]["error"] == "HTTP 500"


def test_a_hanging_receiver_does_not_hold_back_a_security_alert(
    stack: Stack,
    client: TestClient,
    producer: dict[str, str],
    receiver: Receiver,
    callbacks_worker: None,
) -> None:
    register(client, producer, receiver.url("/hang"), "notification.sent")
    first, _ = alert(client, producer)
    wait_until(lambda: events_for(receiver, "/hang", first), 30, "the receiver to be hanging")
    _, user_id = alert(client, producer)  # while the receiver holds the first callback
    wait_until(
        lambda: stack.smtp.handler.messages_to(f"{user_id}@example.com"), 30, "the second alert"
    )
    assert not receiver.release.is_set()  # it went out while the receiver was still hanging
    receiver.release.set()


def test_a_one_click_unsubscribe_is_reported_as_a_preference_change(
    stack: Stack,
    client: TestClient,
    producer: dict[str, str],
    receiver: Receiver,
    callbacks_worker: None,
) -> None:
    endpoint = register(client, producer, receiver.url("/ok"), "preference.changed")
    user_id = f"cb-pref-{uuid.uuid4().hex[:8]}"
    put = client.put(
        f"/v1/users/{user_id}", json={"email": f"{user_id}@example.com"}, headers=producer
    )
    assert put.status_code == 201
    with stack.sessions() as session:
        public_id = session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
    link = unsubscribe_url(stack.settings, str(public_id), "product_updates")
    pressed = client.post(
        link.removeprefix(stack.settings.public_url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert pressed.status_code == 200

    def change() -> list[dict[str, Any]]:
        return [
            body
            for item in receiver.at("/ok")
            if (body := json.loads(item.body))["type"] == "preference.changed"
            and body["data"]["user_id"] == user_id
        ]

    [event] = wait_until(change, 30, "the preference change")
    assert event["data"]["category"] == "product_updates"
    assert (event["data"]["change"], event["data"]["source"]) == ("unsubscribed", "one_click")
    # Pressing again changes nothing, and reports nothing.
    client.post(link.removeprefix(stack.settings.public_url), content=b"List-Unsubscribe=One-Click")
    time.sleep(3)
    assert len(change()) == 1
    # Replay sends it again, with the same id.
    item = next(i for i in receiver.at("/ok") if json.loads(i.body) == event)
    replayed = client.post(
        f"/v1/callbacks/{endpoint['id']}/replay",
        json={"event_id": item.headers["webhook-id"]},
        headers=producer,
    )
    assert replayed.status_code == 202
    wait_until(lambda: len(change()) == 2, 30, "the replayed event")


def test_urls_and_events_are_checked_and_secrets_rotate_with_two_valid(
    stack: Stack, client: TestClient, producer: dict[str, str], tmp_path: Path
) -> None:
    bad = client.post(
        "/v1/callbacks", json={"url": "ftp://x", "events": ["notification.sent"]}, headers=producer
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "url"]
    unknown = client.post(
        "/v1/callbacks",
        json={"url": "https://hooks.example.com", "events": ["opened"]},
        headers=producer,
    )
    assert unknown.status_code == 422
    no_scope = {"Authorization": f"Bearer {make_key(stack.sessions, 'notifications:send')}"}
    only_callbacks = {"Authorization": f"Bearer {make_key(stack.sessions, 'callbacks')}"}
    people = {"url": "https://hooks.example.com/p", "events": ["preference.changed"]}
    refused = client.post("/v1/callbacks", json=people, headers=only_callbacks)
    assert refused.status_code == 422 and "preferences:read" in refused.text
    assert client.get("/v1/callbacks", headers=no_scope).status_code == 403
    endpoint = register(client, producer, "https://hooks.example.com/n", "notification.failed")
    rotated = client.post(f"/v1/callbacks/{endpoint['id']}/secrets", headers=producer).json()
    assert rotated["valid"] == 2 and rotated["secret"] != endpoint["secret"]
    again = client.post(f"/v1/callbacks/{endpoint['id']}/secrets", headers=producer).json()
    assert again["valid"] == 2  # never more than two
    path = f"/v1/callbacks/{endpoint['id']}/secrets/previous"
    assert client.delete(path, headers=producer).status_code == 204
    assert client.get(f"/v1/callbacks/{endpoint['id']}", headers=producer).json()["secrets"] == 1
    changed = client.patch(
        f"/v1/callbacks/{endpoint['id']}",
        json={"events": ["notification.sent", "notification.failed"]},
        headers=producer,
    )
    assert changed.json()["events"] == ["notification.failed", "notification.sent"]
    assert client.delete(f"/v1/callbacks/{endpoint['id']}", headers=producer).status_code == 204
    assert client.get(f"/v1/callbacks/{endpoint['id']}", headers=producer).status_code == 404


def test_a_hard_bounce_is_reported_failed_and_bounced_and_a_suppressed_send_with_its_reason(
    stack: Stack,
    client: TestClient,
    producer: dict[str, str],
    receiver: Receiver,
    callbacks_worker: None,
) -> None:
    register(
        client,
        producer,
        receiver.url("/ok"),
        "notification.failed",
        "notification.bounced",
        "notification.suppressed",
    )
    user_id = f"cb-bounce-{uuid.uuid4().hex[:8]}"
    with stack.smtp.handler.lock:
        stack.smtp.handler.script[f"{user_id}@example.com"] = ["550 5.1.1 no such user"]
    body = {
        "template": "security_alert",
        "user_id": user_id,
        "email": f"{user_id}@example.com",
        "data": sample_data("security_alert"),
    }
    bounced = client.post("/v1/notifications", json=body, headers=producer).json()["id"]
    kinds = wait_until(
        lambda: (
            (
                found := sorted(
                    json.loads(i.body)["type"] for i in events_for(receiver, "/ok", bounced)
                )
            )
            == ["notification.bounced", "notification.failed"]
            and found
        ),
        30,
        "the bounce's events",
    )
    assert kinds == ["notification.bounced", "notification.failed"]
    # The address is now suppressed: the next message to it is suppressed, and says why.
    suppressed = client.post("/v1/notifications", json=body, headers=producer).json()["id"]
    [event] = wait_until(lambda: events_for(receiver, "/ok", suppressed), 30, "the suppression")
    data = json.loads(event.body)["data"]
    assert (json.loads(event.body)["type"], data["status"]) == (
        "notification.suppressed",
        "suppressed",
    )
    assert data["reason"] and "@" not in event.body.decode()


def test_a_complaint_reported_later_reaches_the_key_that_sent_the_message(
    stack: Stack,
    client: TestClient,
    producer: dict[str, str],
    receiver: Receiver,
    callbacks_worker: None,
) -> None:
    register(client, producer, receiver.url("/ok"), "notification.complained")
    notification_id, user_id = alert(client, producer)
    relay = {"Authorization": f"Bearer {make_key(stack.sessions, 'preferences:write')}"}
    report = {
        "email": f"{user_id}@example.com",
        "type": "complaint",
        "notification_id": notification_id,
    }
    answer = client.post("/v1/suppressions/reports", json=report, headers=relay)
    assert answer.json() == {"suppressed": True, "reason": "complaint"}
    [event] = wait_until(lambda: events_for(receiver, "/ok", notification_id), 30, "the complaint")
    assert json.loads(event.body)["type"] == "notification.complained"
    unknown = {**report, "notification_id": "no-such-notification"}
    assert client.post("/v1/suppressions/reports", json=unknown, headers=relay).status_code == 200
