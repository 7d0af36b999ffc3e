"""Amazon SES notifications through SNS: messages signed here with a test key whose certificate
the route fetches (through the web state's https GET, replaced by one that serves it), against
the real database."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select

from notify.inbound import sns
from notify.message import return_addresses
from notify.models import CallbackEvent
from notify.people import suppressions
from notify.web.app import create_app
from tests.support.stack import Stack, make_key, send_alert

pytestmark = pytest.mark.integration
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"
DOMAIN = "inbound.notify.example.com"


def certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def ses(stack: Stack, signing_key: rsa.RSAPrivateKey) -> Iterator[tuple[TestClient, list[str]]]:
    settings = stack.settings.model_copy(update={"ses_topic_arns": TOPIC, "inbound_domain": DOMAIN})
    app = create_app(settings)
    fetched: list[str] = []
    pem = certificate(signing_key)

    def https_get(url: str) -> bytes:
        fetched.append(url)
        return pem if url == CERT_URL else b"confirmed"

    with TestClient(app) as client:
        app.state.notify = replace(app.state.notify, https_get=https_get)
        yield client, fetched


def signed(key: rsa.RSAPrivateKey, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
    message = {
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Timestamp": datetime.now(UTC).isoformat(),
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **message,
    }
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = key.sign(sns.string_to_sign(message), padding.PKCS1v15(), algorithm)
    return {**message, "Signature": base64.b64encode(signature).decode()}


def ses_message(kind: str, address: str, source: str, **details: Any) -> str:
    body: dict[str, Any] = {"notificationType": kind, "mail": {"source": source, "messageId": "x"}}
    if kind == "Bounce":
        body["bounce"] = {
            "bounceType": details.get("bounce_type", "Permanent"),
            "bouncedRecipients": [{"emailAddress": address, "status": "5.1.1"}],
        }
    else:
        body["complaint"] = {"complainedRecipients": [{"emailAddress": address}]}
    return json.dumps(body)


def post(client: TestClient, message: dict[str, Any]) -> int:
    # SNS posts JSON as text/plain
    return client.post(
        "/inbound/ses", content=json.dumps(message), headers={"Content-Type": "text/plain"}
    ).status_code


def sent_alert(stack: Stack, client: TestClient) -> tuple[str, str, dict[str, str]]:
    key = make_key(stack.sessions, "notifications:send", "callbacks")
    auth = {"Authorization": f"Bearer {key}"}
    hook = {"url": "https://hooks.example.com/s", "events": ["notification.bounced"]}
    assert client.post("/v1/callbacks", json=hook, headers=auth).status_code == 201
    notification_id, user_id = send_alert(client, auth, "ses")
    return notification_id, f"{user_id}@example.com", auth


def is_suppressed(stack: Stack, address: str) -> bool:
    with stack.sessions() as session:
        return suppressions.lookup(session, stack.settings.hash_key, address) is not None


def test_a_signed_permanent_bounce_suppresses_and_reaches_the_sending_key(
    stack: Stack, ses: tuple[TestClient, list[str]], signing_key: rsa.RSAPrivateKey
) -> None:
    client, fetched = ses
    notification_id, address, _ = sent_alert(stack, client)
    source = return_addresses.bounce_address(
        stack.settings.secret_key_list, notification_id, DOMAIN
    )
    message = signed(
        signing_key, {"Type": "Notification", "Message": ses_message("Bounce", address, source)}
    )
    assert post(client, message) == 200
    assert is_suppressed(stack, address)
    assert fetched == [CERT_URL]
    with stack.sessions() as session:
        kinds = [
            e.type
            for e in session.scalars(select(CallbackEvent))
            if e.payload.get("id") == notification_id
        ]
    assert kinds == ["notification.bounced"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_transient_bounce_is_not_suppressed_and_a_complaint_is(
    stack: Stack, ses: tuple[TestClient, list[str]], signing_key: rsa.RSAPrivateKey, version: str
) -> None:
    client, _ = ses
    _, address, _ = sent_alert(stack, client)
    transient = ses_message("Bounce", address, "x@example.com", bounce_type="Transient")
    assert (
        post(client, signed(signing_key, {"Type": "Notification", "Message": transient}, version))
        == 200
    )
    assert not is_suppressed(stack, address)
    complaint = ses_message("Complaint", address, "x@example.com")
    assert (
        post(client, signed(signing_key, {"Type": "Notification", "Message": complaint}, version))
        == 200
    )
    assert is_suppressed(stack, address)


def test_forged_foreign_or_unsigned_messages_change_nothing(
    stack: Stack, ses: tuple[TestClient, list[str]], signing_key: rsa.RSAPrivateKey
) -> None:
    client, _ = ses
    _, address, _ = sent_alert(stack, client)
    good = signed(
        signing_key,
        {"Type": "Notification", "Message": ses_message("Complaint", address, "x@e.com")},
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = signed(
        other_key, {"Type": "Notification", "Message": ses_message("Complaint", address, "x@e.com")}
    )
    assert post(client, forged) == 403
    assert post(client, {**good, "Message": good["Message"].replace("Complaint", "Bounce")}) == 403
    assert post(client, {**good, "TopicArn": "arn:aws:sns:eu-west-1:1:other"}) == 403
    assert post(client, {**good, "SigningCertURL": "https://evil.example.com/cert.pem"}) == 403
    assert post(client, {k: v for k, v in good.items() if k != "Signature"}) == 403
    assert client.post("/inbound/ses", content=b"{not json").status_code == 400
    assert not is_suppressed(stack, address)


def test_a_subscription_is_confirmed_and_the_route_is_off_without_topics(
    stack: Stack, ses: tuple[TestClient, list[str]], signing_key: rsa.RSAPrivateKey
) -> None:
    client, fetched = ses
    subscribe = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"
    message = signed(
        signing_key,
        {
            "Type": "SubscriptionConfirmation",
            "Message": "confirm",
            "Token": "t",
            "SubscribeURL": subscribe,
        },
    )
    assert post(client, message) == 200
    assert subscribe in fetched
    with TestClient(create_app(stack.settings)) as off:
        assert off.post("/inbound/ses", content=json.dumps(message)).status_code == 404


def test_a_permanent_bounce_about_the_content_or_the_sender_does_not_suppress(
    stack: Stack, ses: tuple[TestClient, list[str]], signing_key: rsa.RSAPrivateKey
) -> None:
    client, _ = ses
    _, address, _ = sent_alert(stack, client)
    policy = json.loads(ses_message("Bounce", address, "x@example.com"))
    policy["bounce"]["bouncedRecipients"][0]["status"] = "5.7.1"
    content = json.loads(ses_message("Bounce", address, "x@example.com"))
    content["bounce"]["bounceSubType"] = "ContentRejected"
    for body in (policy, content):
        message = signed(signing_key, {"Type": "Notification", "Message": json.dumps(body)})
        assert post(client, message) == 200
    assert not is_suppressed(stack, address)
    assert post(client, {**message, "TopicArn": ["not", "a", "string"]}) == 403
