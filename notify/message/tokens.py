"""Signed tokens for unsubscribe and preference links (itsdangerous). Pure.

One salt per purpose, so a token for one cannot be used for another. Keys come oldest first
from ``NOTIFY_SECRET_KEYS``: the newest signs, every listed key verifies, so rotation does not
break links already in inboxes. Payloads hold an opaque recipient id, never an address.
"""

from __future__ import annotations

from typing import NamedTuple

from itsdangerous import BadData, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from notify.categories import get_category

UNSUBSCRIBE_SALT = "notify.unsubscribe.v1"
PREFERENCES_SALT = "notify.preferences.v1"


class EssentialCategoryError(ValueError):
    """No unsubscribe token exists for an essential category."""


def unsubscribe_token(
    secret_keys: list[str],
    recipient_public_id: str,
    category: str,
    campaign_id: int | None = None,
) -> str:
    """A token that never expires and is never used up (a link scanner must not spend it).
    A campaign's message carries the campaign's id too, so its unsubscribes count for it."""
    if get_category(category).essential:
        raise EssentialCategoryError(category)
    payload: list[str | int] = [recipient_public_id, category]
    if campaign_id is not None:
        payload.append(campaign_id)
    return str(URLSafeSerializer(secret_keys, salt=UNSUBSCRIBE_SALT).dumps(payload))


class UnsubscribeLink(NamedTuple):
    public_id: str
    category: str
    campaign_id: int | None  # the campaign whose message held the link, if any


def preferences_token(secret_keys: list[str], recipient_public_id: str) -> str:
    """A token for the preference page; it carries its signing time and expires on read."""
    return str(
        URLSafeTimedSerializer(secret_keys, salt=PREFERENCES_SALT).dumps(recipient_public_id)
    )


class TokenExpiredError(Exception):
    """A preference-page token that was genuine but is too old."""


def read_unsubscribe_token(secret_keys: list[str], token: str) -> UnsubscribeLink | None:
    """Whose link, for which category and from which campaign; None for any kind of bad
    token. Links made before campaigns were named (two fields) still work."""
    try:
        payload = URLSafeSerializer(secret_keys, salt=UNSUBSCRIBE_SALT).loads(token)
    except BadData:
        return None
    if not isinstance(payload, list) or len(payload) not in (2, 3):
        return None
    if not all(isinstance(part, str) for part in payload[:2]):
        return None
    campaign_id = payload[2] if len(payload) == 3 else None
    if campaign_id is not None and (type(campaign_id) is not int or campaign_id < 1):
        return None
    return UnsubscribeLink(payload[0], payload[1], campaign_id)


def read_preferences_token(secret_keys: list[str], token: str, max_age_seconds: int) -> str | None:
    """The recipient's public id; None if bad; raises :class:`TokenExpiredError` if too old."""
    serializer = URLSafeTimedSerializer(secret_keys, salt=PREFERENCES_SALT)
    try:
        payload = serializer.loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise TokenExpiredError from None
    except BadData:
        return None
    return payload if isinstance(payload, str) else None
