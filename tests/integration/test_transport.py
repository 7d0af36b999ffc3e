"""The SMTP transport against a real SMTP server on loopback (no worker involved)."""

from __future__ import annotations

import email
import time
import uuid
from datetime import UTC, datetime
from email import policy

import pytest

from notify.config import SmtpTarget
from notify.delivery.transport import DeliveryError, SmtpTransport
from notify.message.mime import build_message, new_message_id
from notify.message.rendering import RenderedEmail
from tests.support.services import SmtpServer

pytestmark = pytest.mark.integration


def message_to(address: str) -> email.message.EmailMessage:
    return build_message(
        RenderedEmail("Hello", "text\n", "<p>html</p>"),
        sender="Sender <sender@example.com>",
        recipient=address,
        message_id=new_message_id("example.com"),
        date=datetime.now(UTC),
    )


def send(transport: SmtpTransport, address: str) -> None:
    transport.send(message_to(address), envelope_from="sender@example.com", envelope_to=address)


def test_one_connection_carries_many_messages_and_one_the_relay_dropped_is_reopened() -> None:
    smtp_server = SmtpServer(idle_timeout=1)
    smtp_server.start()
    transport = SmtpTransport(SmtpTarget(smtp_server.url), timeout=5)
    addresses = [f"reuse-{uuid.uuid4().hex[:8]}@example.com" for _ in range(4)]
    for address in addresses[:3]:
        send(transport, address)
    assert transport.connections_opened == 1
    time.sleep(2)  # the relay drops the idle connection after 1 s
    send(transport, addresses[3])
    assert transport.connections_opened == 2
    transport.close()
    smtp_server.stop()
    for address in addresses:
        received = smtp_server.handler.messages_to(address)
        assert len(received) == 1
        parsed = email.message_from_bytes(received[0].content, policy=policy.default)
        assert parsed["To"] == address


def test_a_refused_recipient_does_not_spoil_the_connection_for_the_next_message(
    smtp_server: SmtpServer,
) -> None:
    transport = SmtpTransport(SmtpTarget(smtp_server.url), timeout=5)
    refused = f"gone-{uuid.uuid4().hex[:8]}@example.com"
    accepted = f"fine-{uuid.uuid4().hex[:8]}@example.com"
    smtp_server.handler.script[refused] = ["550 5.1.1 no such user"]
    with pytest.raises(DeliveryError) as caught:
        send(transport, refused)
    assert caught.value.permanent
    assert caught.value.hard_bounce
    send(transport, accepted)
    assert transport.connections_opened == 1
    assert len(smtp_server.handler.messages_to(accepted)) == 1
    transport.close()


def test_starttls_that_the_relay_does_not_offer_means_no_mail_is_sent_in_clear() -> None:
    # A server of this test's own: the session's also takes the workers' mail meanwhile.
    relay = SmtpServer()
    relay.start()
    try:
        target = SmtpTarget(f"smtp+starttls://user:secret@127.0.0.1:{relay.port}")
        transport = SmtpTransport(target, timeout=5)
        with pytest.raises(DeliveryError) as caught:
            send(transport, "tls-only@example.com")
        assert not caught.value.permanent
        assert "STARTTLS" in caught.value.reason
        assert relay.handler.mail_from_count == 0
    finally:
        relay.stop()


def test_a_relay_that_is_not_listening_is_a_transient_error() -> None:
    transport = SmtpTransport(SmtpTarget("smtp://127.0.0.1:1"), timeout=2)
    with pytest.raises(DeliveryError) as caught:
        send(transport, "nobody@example.com")
    assert not caught.value.permanent


def test_serialised_bytes_go_out_as_they_are_also_to_an_address_that_needs_smtputf8(
    smtp_server: SmtpServer,
) -> None:
    transport = SmtpTransport(SmtpTarget(smtp_server.url), timeout=5)
    plain = f"raw-{uuid.uuid4().hex[:8]}@example.com"
    international = f"jürgen-{uuid.uuid4().hex[:8]}@example.com"
    for address in (plain, international):
        message = message_to(address)
        transport.send_raw(
            message.as_bytes(),
            message_id=str(message["Message-ID"]),
            envelope_from="sender@example.com",
            envelope_to=address,
        )
    transport.close()
    for address in (plain, international):
        (received,) = smtp_server.handler.messages_to(address)
        parsed = email.message_from_bytes(received.content, policy=policy.default)
        assert parsed["To"] == address
        body = parsed.get_body(("plain",))
        assert body is not None and body.get_content().rstrip() == "text"
    assert transport.connections_opened == 1


def test_a_body_line_that_starts_with_from_arrives_as_written(smtp_server: SmtpServer) -> None:
    transport = SmtpTransport(SmtpTarget(smtp_server.url), timeout=5)
    address = f"from-line-{uuid.uuid4().hex[:8]}@example.com"
    message = build_message(
        RenderedEmail("Hello", "Hi,\nFrom your security team\n", "<p>From us</p>"),
        sender="Sender <sender@example.com>",
        recipient=address,
        message_id=new_message_id("example.com"),
        date=datetime.now(UTC),
    )
    transport.send(message, envelope_from="sender@example.com", envelope_to=address)
    transport.close()
    (received,) = smtp_server.handler.messages_to(address)
    parsed = email.message_from_bytes(received.content, policy=policy.default)
    body = parsed.get_body(("plain",))
    assert body is not None
    assert "\nFrom your security team" in body.get_content().replace("\r\n", "\n")
    assert b"\n>From" not in received.content
