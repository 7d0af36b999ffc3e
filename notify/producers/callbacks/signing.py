"""The Standard Webhooks headers of one delivery, made and checked with the convention's own
reference library (``standardwebhooks``): ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per secret).

A secret is ``whsec_`` and 32 random bytes in base64. An endpoint holds at most two while a
secret is rotated; each delivery is signed with both, so a receiver that knows either accepts it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from standardwebhooks import Webhook, WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105 (the convention's prefix, not a secret)
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def headers(
    event_id: str, body: str, signing_secrets: Iterable[str], at: datetime
) -> dict[str, str]:
    """The three headers for ``body`` sent as event ``event_id`` at ``at``."""
    moment = at.astimezone(UTC)
    signatures = " ".join(
        Webhook(secret).sign(msg_id=event_id, timestamp=moment, data=body)
        for secret in signing_secrets
    )
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signatures,
    }


def verify(received: Mapping[str, str], body: bytes | str, known_secrets: Iterable[str]) -> bool:
    """Whether ``body`` with ``received`` headers was signed with one of ``known_secrets`` within
    the last five minutes (the convention's tolerance). Never raises for bad input."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    plain = {str(name).lower(): str(value) for name, value in received.items()}
    for secret in known_secrets:
        try:
            Webhook(secret).verify(text, plain, json_parse=False)
        except (WebhookVerificationError, ValueError, TypeError):
            continue
        return True
    return False
