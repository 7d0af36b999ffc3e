"""``notify inbound`` on the real stack: its SMTP receiver on loopback, fed with smtplib, writing
to PostgreSQL; the returned messages are the fixtures of tests/unit/test_inbound_reports.py."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from notify.inbound.server import serve
from notify.message import return_addresses
from notify.models import CallbackEvent, ConsentEvent, Recipient
from notify.people import suppressions
from tests.support.services import free_port
from tests.support.stack import Stack, make_key, send_alert
from tests.unit.test_inbound_reports import message

pytestmark = pytest.mark.integration
DOMAIN = "inbound.notify.example.com"


@pytest.fixture(scope="module")
def inbound(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Any]]:
    keep = tmp_path_factory.mktemp("inbound-kept")
    settings = stack.settings.model_copy(
        update={"inbound_domain": DOMAIN, "inbound_keep_dir": str(keep)}
    )
    port = free_port()
    controller = serve(stack.sessions, settings, "127.0.0.1", port)
    yield port, settings
    controller.stop()


@pytest.fixture
def producer(stack: Stack, client: TestClient) -> dict[str, str]:
    key = make_key(
        stack.sessions, "notifications:send", "callbacks", "users:write", "preferences:read"
    )
    auth = {"Authorization": f"Bearer {key}"}
    events = ["notification.bounced", "notification.complained", "preference.changed"]
    answer = client.post(
        "/v1/callbacks", json={"url": "https://hooks.example.com/n", "events": events}, headers=auth
    )
    assert answer.status_code == 201
    return auth


def alert(client: TestClient, auth: dict[str, str]) -> tuple[str, str]:
    notification_id, user_id = send_alert(client, auth, "in")
    return notification_id, f"{user_id}@example.com"


def deliver(port: int, rcpt: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("", [rcpt], raw)


def suppressed(stack: Stack, address: str) -> str | None:
    with stack.sessions() as session:
        entry = suppressions.lookup(session, stack.settings.hash_key, address)
    return None if entry is None else str(entry)


def events(stack: Stack, notification_id: str) -> list[str]:
    with stack.sessions() as session:
        rows = session.scalars(select(CallbackEvent)).all()
    return sorted(row.type for row in rows if row.payload.get("id") == notification_id)


@pytest.mark.parametrize(
    ("fixture", "hard"),
    [
        ("postfix_user_unknown.eml", True),
        ("exim_host_unknown.eml", True),
        ("gmail_no_such_account.eml", True),
        ("ses_bounce.eml", True),
        ("outlook_mailbox_full.eml", False),
    ],
)
def test_a_bounce_from_each_server_is_read_and_a_hard_one_suppresses(
    stack: Stack,
    client: TestClient,
    producer: dict[str, str],
    inbound: tuple[int, Any],
    fixture: str,
    hard: bool,
) -> None:
    port, settings = inbound
    notification_id, address = alert(client, producer)
    rcpt = return_addresses.bounce_address(settings.secret_key_list, notification_id, DOMAIN)
    deliver(port, rcpt, message(fixture, rcpt, address))
    assert (suppressed(stack, address) is not None) is hard
    assert "notification.bounced" in events(stack, notification_id)


def test_a_delay_changes_nothing_and_a_complaint_suppresses_optional_mail(
    stack: Stack, client: TestClient, producer: dict[str, str], inbound: tuple[int, Any]
) -> None:
    port, settings = inbound
    notification_id, address = alert(client, producer)
    rcpt = return_addresses.bounce_address(settings.secret_key_list, notification_id, DOMAIN)
    deliver(port, rcpt, message("delayed.eml", rcpt, address))
    assert suppressed(stack, address) is None and events(stack, notification_id) == []
    deliver(port, rcpt, message("arf_complaint.eml", rcpt, address))
    assert suppressed(stack, address) is not None
    assert events(stack, notification_id) == ["notification.complained"]


def test_a_mail_to_the_unsubscribe_address_does_what_one_click_does(
    stack: Stack, client: TestClient, producer: dict[str, str], inbound: tuple[int, Any]
) -> None:
    port, settings = inbound
    user_id = f"in-mailto-{uuid.uuid4().hex[:8]}"
    put = client.put(
        f"/v1/users/{user_id}", json={"email": f"{user_id}@example.com"}, headers=producer
    )
    assert put.status_code == 201
    with stack.sessions() as session:
        recipient = session.scalars(select(Recipient).where(Recipient.user_id == user_id)).one()
    rcpt = return_addresses.unsubscribe_address(
        settings.secret_key_list, recipient.public_id, "product_updates", None, DOMAIN
    )
    deliver(port, rcpt, b"Subject: unsubscribe\r\n\r\n")
    with stack.sessions() as session:
        logged = session.scalars(
            select(ConsentEvent).where(ConsentEvent.recipient_id == recipient.id)
        ).all()
    assert [(event.action, event.source) for event in logged] == [("unsubscribed", "mailto")]


def test_unknown_addresses_are_refused_and_unreadable_mail_is_kept(
    client: TestClient, producer: dict[str, str], inbound: tuple[int, Any]
) -> None:
    port, settings = inbound
    with (
        smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp,
        pytest.raises(smtplib.SMTPRecipientsRefused),
    ):
        smtp.sendmail("", [f"bounces+deadbeef.000000000000@{DOMAIN}"], b"Subject: x\r\n\r\n")
    notification_id, address = alert(client, producer)
    rcpt = return_addresses.bounce_address(settings.secret_key_list, notification_id, DOMAIN)
    raw = message("out_of_office.eml", rcpt, address)
    deliver(port, rcpt, raw)
    kept = list(Path(settings.inbound_keep_dir).glob("*.eml"))
    assert any(path.read_bytes() == raw for path in kept)
