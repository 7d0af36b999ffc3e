"""``notify.client`` against the real service: a ``notify web`` process, PostgreSQL, Redis, the
worker and the SMTP server. Faults are put between the client and the service by a transport
that wraps the real one: it can lose the service's answer after the request arrived, fail to
connect, or answer 429 or 503 itself."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from notify.client import (
    AsyncNotifyClient,
    InvalidCallbackError,
    NotifyClient,
    NotifyError,
    NotifyUnavailableError,
    RetryPolicy,
    verify_callback,
)
from notify.producers.callbacks import signing
from tests.support.services import WebProcess, wait_until
from tests.support.stack import Stack, make_key, sample_data

pytestmark = pytest.mark.integration

QUICK = RetryPolicy(attempts=4, first_wait=0.05, longest_wait=0.2)


class Faulty(httpx.BaseTransport):
    """Forwards to the real service; the first ``len(faults)`` requests meet a fault first."""

    def __init__(self, faults: list[str]) -> None:
        self.real = httpx.HTTPTransport()
        self.faults = list(faults)
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "connect":
            raise httpx.ConnectError("refused (injected)", request=request)
        if fault == "429":
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "slow down"})
        if fault == "503":
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "down"})
        response = self.real.handle_request(request)
        if fault == "lose":
            response.read()
            return httpx.Response(502, json={"detail": "the answer was lost (injected)"})
        return response


class AsyncFaulty(httpx.AsyncBaseTransport):
    def __init__(self, faults: list[str]) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.faults = list(faults)
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        fault = self.faults.pop(0) if self.faults else None
        response = await self.real.handle_async_request(request)
        if fault == "lose":
            await response.aread()
            return httpx.Response(502, json={"detail": "the answer was lost (injected)"})
        return response


@pytest.fixture
def key(stack: Stack) -> str:
    return make_key(
        stack.sessions, "notifications:send", "users:read", "users:write", "preferences:read",
        "preferences:write",
    )  # fmt: skip


def body() -> tuple[str, str, dict[str, object]]:
    user_id = f"client-{uuid.uuid4().hex[:10]}"
    return user_id, f"{user_id}@example.com", sample_data("security_alert")


def test_a_send_whose_answer_is_lost_is_retried_with_its_key_and_sent_once(
    stack: Stack, web_server: WebProcess, key: str
) -> None:
    transport = Faulty(["lose", "connect"])
    user_id, address, data = body()
    with NotifyClient(web_server.base_url, key, retry=QUICK, transport=transport) as notify:
        accepted = notify.send("security_alert", user_id, data=data, email=address)
        keys = {request.headers["idempotency-key"] for request in transport.seen}
        assert keys == {accepted.idempotency_key} and len(transport.seen) == 3
        state = wait_until(
            lambda: (found := notify.notification(accepted.id)).status == "sent" and found,
            30,
            "the notification to be sent",
        )
    assert state.template == "security_alert" and state.sent_at is not None
    assert len(stack.smtp.handler.messages_to(address)) == 1  # once, though sent twice


def test_429_and_503_are_waited_out_and_a_4xx_is_raised_at_once(
    web_server: WebProcess, key: str
) -> None:
    user_id, address, data = body()
    transport = Faulty(["429", "503"])
    with NotifyClient(web_server.base_url, key, retry=QUICK, transport=transport) as notify:
        assert notify.send("security_alert", user_id, data=data, email=address).status == "queued"
        assert len(transport.seen) == 3
        before = len(transport.seen)
        with pytest.raises(NotifyError) as refused:
            notify.send("security_alert", user_id, data={}, email=address)
        assert refused.value.status == 422 and isinstance(refused.value.detail, list)
        assert len(transport.seen) == before + 1  # not retried
    down = Faulty(["503"] * 10)
    with (
        NotifyClient(web_server.base_url, key, retry=QUICK, transport=down) as notify,
        pytest.raises(NotifyUnavailableError) as unavailable,
    ):
        notify.send("security_alert", user_id, data=data, email=address)
    assert unavailable.value.status == 503 and len(down.seen) == QUICK.attempts


def test_users_and_preferences_through_the_client(web_server: WebProcess, key: str) -> None:
    user_id, address, _ = body()
    with NotifyClient(web_server.base_url, key, retry=QUICK) as notify:
        created = notify.put_user(user_id, email=address, locale="de-AT", first_name="Ada")
        assert created["user_id"] == user_id
        assert notify.user(user_id)["locale"] == "de-AT"
        assert notify.preferences(user_id)["categories"]["product_updates"]["subscribed"]
        notify.set_preferences(user_id, {"product_updates": False})
        assert not notify.preferences(user_id)["categories"]["product_updates"]["subscribed"]
        with pytest.raises(NotifyError) as essential:
            notify.set_preferences(user_id, {"security": False})
        assert essential.value.status == 422
        with pytest.raises(NotifyError) as missing:
            notify.user(f"{user_id}-nobody")
        assert missing.value.status == 404


def test_the_async_client_keeps_its_key_across_a_lost_answer(
    stack: Stack, web_server: WebProcess, key: str
) -> None:
    user_id, address, data = body()
    transport = AsyncFaulty(["lose"])

    async def scenario() -> str:
        async with AsyncNotifyClient(
            web_server.base_url, key, retry=QUICK, transport=transport
        ) as notify:
            accepted = await notify.send("security_alert", user_id, data=data, email=address)
            return (await notify.notification(accepted.id)).id

    notification_id = asyncio.run(scenario())
    posts = [request for request in transport.seen if request.method == "POST"]
    assert len(posts) == 2 and len({request.headers["idempotency-key"] for request in posts}) == 1
    wait_until(lambda: stack.smtp.handler.messages_to(address), 30, "the alert")
    assert len(stack.smtp.handler.messages_to(address)) == 1
    assert notification_id


def test_verify_callback_accepts_a_signed_event_and_refuses_anything_else() -> None:
    secret, other = signing.new_secret(), signing.new_secret()
    event = '{"type":"notification.sent","timestamp":"t","data":{"id":"n-1","status":"sent"}}'
    headers = signing.headers("msg_1", event, [secret], datetime.now(UTC))
    assert verify_callback(headers, event.encode(), [other, secret])["data"]["id"] == "n-1"
    with pytest.raises(InvalidCallbackError):
        verify_callback(headers, event, [other])
    with pytest.raises(InvalidCallbackError):
        verify_callback(headers, event.replace("sent", "failed"), [secret])
    not_json = "not json"
    with pytest.raises(InvalidCallbackError):
        verify_callback(
            signing.headers("msg_2", not_json, [secret], datetime.now(UTC)), not_json, [secret]
        )
