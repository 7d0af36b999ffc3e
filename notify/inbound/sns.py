"""Amazon SES bounce and complaint notifications, as Amazon SNS delivers them over HTTPS. Pure
but for the certificate fetch, which the caller passes in.

An SNS message is trusted only when its signature verifies against the certificate at its
``SigningCertURL`` (https, on an ``sns.<region>.amazonaws.com`` host; SignatureVersion 1 is
SHA1, 2 is SHA256, both RSA PKCS#1 v1.5) over the fields the SNS documentation lists for its
type, and its ``TopicArn`` is one the operator allowed (``NOTIFY_SES_TOPIC_ARNS``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

AMAZON_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
_SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_FIELDS[UNSUBSCRIBE_CONFIRMATION] = _SIGNED_FIELDS[SUBSCRIPTION_CONFIRMATION]


class SnsError(ValueError):
    """The message is not a genuine SNS message for us; the text says why."""


def amazon_url(url: str) -> str:
    """``url`` if it is https on an SNS host (where certificates and confirmations live)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not AMAZON_HOST.match(parts.hostname or ""):
        raise SnsError("a URL that is not https on an sns.<region>.amazonaws.com host")
    return url


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    fields = _SIGNED_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise SnsError(f"an unknown message type {str(message.get('Type'))[:40]!r}")
    lines = []
    for name in fields:
        if name == "Subject" and message.get(name) is None:
            continue  # signed only when present
        value = message.get(name)
        if not isinstance(value, str):
            raise SnsError(f"no {name}")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


def verify(message: Mapping[str, Any], fetch_certificate: Callable[[str], bytes]) -> None:
    """Raise :class:`SnsError` unless ``message`` is signed by the certificate it names."""
    version = str(message.get("SignatureVersion"))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 (SNS signature version 1 is defined with SHA1)
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise SnsError("an unknown signature version")
    url = amazon_url(str(message.get("SigningCertURL", "")))
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        certificate = x509.load_pem_x509_certificate(fetch_certificate(url))
    except (binascii.Error, ValueError) as error:
        raise SnsError(f"an unreadable signature or certificate ({type(error).__name__})") from None
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsError("a certificate without an RSA key")
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise SnsError("a signature that does not verify") from None


@dataclass(frozen=True)
class SesEvent:
    """What one SES notification says: ``bounce`` (``permanent`` or not) or ``complaint``, for
    which addresses (with their status), about the message sent from ``source``."""

    kind: str  # bounce, complaint, other
    permanent: bool = False
    recipients: tuple[tuple[str, str | None], ...] = ()
    source: str | None = None
    subtype: str | None = None  # SES's bounceSubType (NoEmail, Suppressed, ContentRejected, …)
    extra: dict[str, Any] = field(default_factory=dict)


def ses_event(text: str) -> SesEvent:
    """The SES notification in an SNS ``Message`` (notification or event-publishing form)."""
    try:
        body = json.loads(text)
    except ValueError:
        raise SnsError("a Message that is not JSON") from None
    if not isinstance(body, dict):
        raise SnsError("a Message that is not an object")
    kind = str(body.get("notificationType") or body.get("eventType") or "").lower()
    mail = body.get("mail")
    found = mail.get("source") if isinstance(mail, dict) else None
    source = found if isinstance(found, str) else None
    if kind == "bounce" and isinstance(body.get("bounce"), dict):
        bounce = body["bounce"]
        recipients = tuple(
            (str(item["emailAddress"]), str(item["status"]) if item.get("status") else None)
            for item in bounce.get("bouncedRecipients", [])
            if isinstance(item, dict) and item.get("emailAddress")
        )
        permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
        subtype = str(bounce["bounceSubType"]) if bounce.get("bounceSubType") else None
        return SesEvent("bounce", permanent, recipients, source, subtype)
    if kind == "complaint" and isinstance(body.get("complaint"), dict):
        recipients = tuple(
            (str(item["emailAddress"]), None)
            for item in body["complaint"].get("complainedRecipients", [])
            if isinstance(item, dict) and item.get("emailAddress")
        )
        return SesEvent("complaint", False, recipients, source)
    return SesEvent("other", source=source)
