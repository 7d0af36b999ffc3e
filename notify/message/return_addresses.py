"""Per-message addresses that mail comes back to, when ``NOTIFY_INBOUND_DOMAIN`` is set. Pure.

* ``bounces+<notification>.<mac>@<domain>``: the envelope sender (VERP), so a delivery status
  notification or a feedback report names the message it is about;
* ``unsubscribe+<person>.<category>[.<campaign>].<mac>@<domain>``: the ``mailto:`` of
  ``List-Unsubscribe`` beside the https URL (RFC 8058 and the mailbox providers ask for both).

Both fit the 64 characters RFC 5321 allows a local part, and both are lower case letters,
digits and dots only, so a relay that changes the case of a local part breaks nothing. The
mac is the first 12 hex digits of an HMAC-SHA256 under each of ``NOTIFY_SECRET_KEYS`` (the
newest signs, every one verifies).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import NamedTuple

BOUNCES = "bounces"
UNSUBSCRIBE = "unsubscribe"
MAC_LENGTH = 12
# One fixed code per optional category, never reused (a code in an old email must keep its
# meaning); a test holds every optional category to one.
CATEGORY_CODES = {"product_updates": "p"}
_CATEGORY_KEYS = {code: key for key, code in CATEGORY_CODES.items()}
_LOCAL = re.compile(r"^(bounces|unsubscribe)\+([0-9a-z.]+)$")


def _mac(keys: list[str], purpose: str, value: str) -> list[str]:
    """The mac of ``value`` under each key, newest first."""
    return [
        hmac.new(key.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[
            :MAC_LENGTH
        ]
        for key in reversed(keys)
    ]


def _signed(keys: list[str], purpose: str, value: str) -> str:
    return f"{value}.{_mac(keys, purpose, value)[0]}"


def _verified(keys: list[str], purpose: str, token: str) -> str | None:
    value, _, mac = token.rpartition(".")
    if not value or not any(
        hmac.compare_digest(mac, known) for known in _mac(keys, purpose, value)
    ):
        return None
    return value


def bounce_address(keys: list[str], notification_id: str, domain: str) -> str:
    """The envelope sender of one notification (its id is a UUID)."""
    compact = notification_id.replace("-", "").lower()
    return f"{BOUNCES}+{_signed(keys, BOUNCES, compact)}@{domain}"


def _public_part(public_id: str) -> str:
    raw = base64.urlsafe_b64decode(public_id + "=" * (-len(public_id) % 4))
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def _public_id(part: str) -> str | None:
    try:
        raw = base64.b32decode(part.upper() + "=" * (-len(part) % 8))
    except (binascii.Error, ValueError):
        return None
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def unsubscribe_address(
    keys: list[str], public_id: str, category: str, campaign_id: int | None, domain: str
) -> str:
    """The ``mailto:`` address that unsubscribes this person from ``category``."""
    parts = [_public_part(public_id), CATEGORY_CODES[category]]
    if campaign_id is not None:
        parts.append(str(campaign_id))
    return f"{UNSUBSCRIBE}+{_signed(keys, UNSUBSCRIBE, '.'.join(parts))}@{domain}"


class Returned(NamedTuple):
    """What an inbound address stands for: a notification's bounces, or an unsubscribe."""

    kind: str  # BOUNCES or UNSUBSCRIBE
    notification_id: str | None = None
    public_id: str | None = None
    category: str | None = None
    campaign_id: int | None = None


def read(keys: list[str], address: str, domain: str) -> Returned | None:
    """What ``address`` stands for; None for one notify did not make (or a forged one)."""
    local, _, at = address.strip().strip("<>").rpartition("@")
    found = _LOCAL.match(local.lower())
    if found is None or at.lower() != domain.lower():
        return None
    kind, token = found.groups()
    value = _verified(keys, kind, token)
    if value is None:
        return None
    if kind == BOUNCES:
        if not re.fullmatch(r"[0-9a-f]{32}", value):
            return None
        dashed = f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        return Returned(BOUNCES, notification_id=dashed)
    pieces = value.split(".")
    public_id = _public_id(pieces[0]) if pieces else None
    category = _CATEGORY_KEYS.get(pieces[1]) if len(pieces) in (2, 3) else None
    campaign = pieces[2] if len(pieces) == 3 else None
    if public_id is None or category is None or (campaign is not None and not campaign.isdigit()):
        return None
    return Returned(
        UNSUBSCRIBE,
        public_id=public_id,
        category=category,
        campaign_id=int(campaign) if campaign else None,
    )
