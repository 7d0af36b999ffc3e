"""End to end: POST /v1/notifications → PostgreSQL → Redis → a Celery worker process → SMTP.

Every assertion about mail is made on what the aiosmtpd server on loopback received.
"""

from __future__ import annotations

import email
import time
import uuid
from email import policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
import redis
from fastapi.testclient import TestClient

from tests.support.services import wait_until
from tests.support.stack import (
    SENDING_DOMAIN,
    Stack,
    notification_row,
    sample_data,
    wait_for_status,
)

pytestmark = pytest.mark.integration


def new_address() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def post(
    client: TestClient, auth: dict[str, str], template: str, address: str, **extra: Any
) -> Any:
    body = {
        "template": template,
        "user_id": f"u-{address}",
        "email": address,
        "data": extra.pop("data", sample_data(template)),
        **extra,
    }
    return client.post("/v1/notifications", json=body, headers=auth)


def parse(raw: bytes) -> EmailMessage:
    return cast(EmailMessage, email.message_from_bytes(raw, policy=policy.default))


def received_one(stack: Stack, address: str, timeout: float = 30) -> EmailMessage:
    messages = wait_until(
        lambda: stack.smtp.handler.messages_to(address), timeout, f"mail to {address}"
    )
    assert len(messages) == 1, f"expected one message to {address}, got {len(messages)}"
    return parse(messages[0].content)


@pytest.mark.parametrize(
    ("template", "category", "sender"),
    [
        ("security_alert", "security", "security@notify.localhost"),
        ("admin_notice", "admin", "accounts@notify.localhost"),
        ("product_update", "product_updates", "news@notify.localhost"),
    ],
)
def test_each_template_reaches_the_smtp_server_as_a_well_formed_message(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    template: str,
    category: str,
    sender: str,
) -> None:
    address = new_address()
    response = post(client, auth, template, address)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    notification_id = response.json()["id"]

    message = received_one(stack, address)
    row = wait_for_status(stack, notification_id, "sent")

    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content().strip()
    assert message.get_body(("html",)).get_content().strip()
    for header in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        assert len(message.get_all(header, [])) == 1, header
    assert message["To"].addresses[0].addr_spec == address
    assert message["From"].addresses[0].addr_spec == sender
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith(f"@{SENDING_DOMAIN}>")
    assert "\n" not in message["Subject"]
    assert message["Subject"] == sample_data(template).get("headline", message["Subject"])

    status = client.get(f"/v1/notifications/{notification_id}", headers=auth).json()
    assert status["status"] == "sent"
    assert status["category"] == category
    assert status["template"] == template
    assert status["message_id"] == message["Message-ID"] == row.message_id
    assert status["attempts"] == 1
    assert status["sent_at"] is not None


def test_repeating_a_request_with_its_idempotency_key_sends_one_email(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    address = new_address()
    key = uuid.uuid4().hex
    first = post(client, auth, "security_alert", address, idempotency_key=key)
    header_auth = {**auth, "Idempotency-Key": key}
    body = {
        "template": "security_alert",
        "user_id": f"u-{address}",
        "email": address,
        "data": sample_data("security_alert"),
    }
    second = client.post("/v1/notifications", json=body, headers=header_auth)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]

    received_one(stack, address)
    different = {**body, "data": {**body["data"], "event": "Password changed"}}
    conflict = client.post("/v1/notifications", json=different, headers=header_auth)
    assert conflict.status_code == 409
    time.sleep(1.5)
    assert len(stack.smtp.handler.messages_to(address)) == 1


def test_a_451_reply_is_retried_with_backoff_and_then_delivered_once(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    address = new_address()
    stack.smtp.handler.script[address] = ["451 4.3.0 try again later"]
    response = post(client, auth, "security_alert", address)
    notification_id = response.json()["id"]

    received_one(stack, address)
    row = wait_for_status(stack, notification_id, "sent")
    assert row.attempts == 2
    assert stack.smtp.handler.rcpt_attempts[address] == 2


def test_a_550_reply_fails_at_once_with_its_reason_and_is_never_retried(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    address = new_address()
    stack.smtp.handler.script[address] = ["550 5.1.1 no such user"] * 5
    notification_id = post(client, auth, "admin_notice", address).json()["id"]

    row = wait_for_status(stack, notification_id, "failed")
    assert row.reason is not None
    assert "550" in row.reason
    assert "5.1.1" in row.reason
    assert row.attempts == 1
    time.sleep(4)  # longer than the retry backoff and the sweeper's threshold
    assert stack.smtp.handler.rcpt_attempts[address] == 1
    assert stack.smtp.handler.messages_to(address) == []
    status = client.get(f"/v1/notifications/{notification_id}", headers=auth).json()
    assert status["status"] == "failed"
    assert "5.1.1" in status["reason"]


def test_retries_that_never_succeed_end_failed_after_the_configured_attempts(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    address = new_address()
    stack.smtp.handler.script[address] = ["451 4.3.0 busy"] * 20
    notification_id = post(client, auth, "security_alert", address).json()["id"]

    row = wait_for_status(stack, notification_id, "failed", timeout=40)
    assert row.attempts == stack.settings.max_attempts
    assert row.reason is not None and "gave up after" in row.reason
    assert stack.smtp.handler.messages_to(address) == []


def test_a_worker_killed_with_sigkill_mid_send_still_delivers_exactly_once(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    address = new_address()
    handler = stack.smtp.handler
    handler.stalled.clear()
    handler.script[address] = ["hang:30"]
    notification_id = post(client, auth, "security_alert", address).json()["id"]

    wait_until(handler.stalled.is_set, 20, "the worker to be in the middle of the SMTP dialogue")
    assert notification_row(stack, notification_id).status == "sending"
    stack.worker.kill()
    stack.worker.start()

    received_one(stack, address, timeout=40)
    wait_for_status(stack, notification_id, "sent")
    # Outlast the visibility timeout: Redis re-delivers the unacked task, the claim refuses it.
    time.sleep(stack.settings.visibility_timeout_seconds + 3)
    assert len(handler.messages_to(address)) == 1


def test_a_broker_queue_flushed_after_enqueue_is_recovered_by_the_sweeper(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    stack.worker.stop()
    address = new_address()
    notification_id = post(client, auth, "security_alert", address).json()["id"]
    broker = redis.Redis.from_url(stack.settings.broker_url)
    # The web publishes from a thread of its own, a moment after the 202.
    wait_until(lambda: broker.llen("essential") >= 1, 10, "the send task to be published")
    broker.flushdb()
    broker.close()
    stack.worker.start()

    received_one(stack, address, timeout=40)
    row = wait_for_status(stack, notification_id, "sent")
    assert row.attempts == 1


def test_a_line_break_in_a_subject_variable_is_refused_and_nothing_is_stored(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    for evil in ("Hi\r\nBcc: x@evil.example", "Hi\n", "A\u2028B", "A\x85B", "A\x00B"):
        address = new_address()
        data = {**sample_data("admin_notice"), "headline": evil}
        response = post(client, auth, "admin_notice", address, data=data)
        assert response.status_code == 422, evil
        assert response.json()["detail"][0]["loc"] == ["body", "data", "headline"]
        assert client.get(f"/v1/users/u-{address}", headers=auth).status_code == 404


def test_markup_and_line_breaks_in_body_data_stay_in_the_body(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    address = new_address()
    data = {
        **sample_data("admin_notice"),
        "first_name": "<script>alert(1)</script>",
        "message": "line one\r\nBcc: x@evil.example",
    }
    assert post(client, auth, "admin_notice", address, data=data).status_code == 202
    control_address = new_address()
    assert post(client, auth, "admin_notice", control_address).status_code == 202

    message = received_one(stack, address)
    control = received_one(stack, control_address)
    assert sorted(message.keys()) == sorted(control.keys())
    assert "Bcc" not in message
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert "<script>alert(1)</script>" in text


def test_a_changed_address_applies_to_a_notification_already_queued(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    stack.worker.stop()
    old, new = new_address(), new_address()
    user_id = f"u-{old}"
    body = {
        "template": "security_alert",
        "user_id": user_id,
        "email": old,
        "data": sample_data("security_alert"),
    }
    notification_id = client.post("/v1/notifications", json=body, headers=auth).json()["id"]
    assert client.put(f"/v1/users/{user_id}", json={"email": new}, headers=auth).status_code == 200
    stack.worker.start()

    received_one(stack, new)
    wait_for_status(stack, notification_id, "sent")
    assert stack.smtp.handler.messages_to(old) == []


def test_a_group_of_notifications_in_one_task_is_sent_once_each_with_its_own_message_id(
    stack: Stack,
) -> None:
    from notify.celery_app import create_celery
    from notify.delivery.enqueue import enqueue_sends

    addresses = [new_address() for _ in range(25)]
    items = [stored_alert(stack, address) for address in addresses]
    celery = create_celery(stack.settings)
    try:
        assert enqueue_sends(celery, items, batch_size=50) == 25  # one task for all 25
        assert enqueue_sends(celery, items[:10], batch_size=50) == 10  # a duplicate task
    finally:
        celery.close()
    messages = [received_one(stack, address) for address in addresses]
    rows = [wait_for_status(stack, notification_id, "sent") for notification_id, _ in items]
    assert [row.attempts for row in rows] == [1] * 25
    assert len({message["Message-ID"] for message in messages}) == 25
    assert {message["Message-ID"].strip("<>") for message in messages} == {
        (row.message_id or "").strip("<>") for row in rows
    }
    time.sleep(1)  # the duplicate task has run by now, and found nothing to claim
    assert all(len(stack.smtp.handler.messages_to(address)) == 1 for address in addresses)


def stored_alert(stack: Stack, address: str) -> tuple[str, str]:
    """A security alert stored and not yet published (as the web leaves it at 202): its id
    and category."""
    from notify.delivery import outbox

    request = outbox.NotificationRequest(
        "security_alert", f"u-{address}", address, sample_data("security_alert")
    )
    accepted = outbox.accept(
        stack.sessions,
        None,
        request,
        max_data_bytes=stack.settings.max_data_bytes,
        hash_key=stack.settings.hash_key,
    )
    return accepted.id, accepted.category


def test_a_row_no_data_key_decrypts_is_retried_then_failed_and_the_rest_of_its_task_is_sent(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import delete, select

    from notify import crypto
    from notify.celery_app import create_celery
    from notify.delivery.enqueue import enqueue_sends
    from notify.delivery.outcomes import UNDECRYPTABLE
    from notify.models import Notification, Recipient

    addresses = [new_address() for _ in range(3)]
    items = [stored_alert(stack, addresses[0])]
    with monkeypatch.context() as keys:  # stored under a key the worker does not have
        keys.setattr(crypto, "_keyring", crypto.keyring(["a-key-the-worker-never-had"]))
        items.append(stored_alert(stack, addresses[1]))
    items.append(stored_alert(stack, addresses[2]))
    lost = items[1][0]

    def lost_row() -> Any:  # its plain columns: its data cannot be decrypted here either
        with stack.sessions() as session:
            return session.execute(
                select(Notification.status, Notification.reason, Notification.attempts).where(
                    Notification.id == lost
                )
            ).one()

    celery = create_celery(stack.settings)
    try:
        assert enqueue_sends(celery, items, batch_size=50) == 3  # one task for the three
        received_one(stack, addresses[0])
        received_one(stack, addresses[2])
        for notification_id in (items[0][0], items[2][0]):
            wait_for_status(stack, notification_id, "sent")
        # Retried with backoff (jittered, up to 0.5 s, 1 s, 2 s here) while the worker cannot
        # read it, then failed at the last of NOTIFY_MAX_ATTEMPTS.
        wait_until(lambda: lost_row().status == "failed", 30, "the undecryptable row to fail")
        attempts = stack.settings.max_attempts
        reason = f"gave up after {attempts} attempts: {UNDECRYPTABLE}"
        assert tuple(lost_row()) == ("failed", reason, attempts)
        assert stack.smtp.handler.messages_to(addresses[1]) == []
    finally:
        celery.close()
        with stack.sessions.begin() as session:  # no later test may meet rows it cannot read
            owner = session.scalar(select(Notification.recipient_id).where(Notification.id == lost))
            session.execute(delete(Notification).where(Notification.id == lost))
            session.execute(delete(Recipient).where(Recipient.id == owner))
