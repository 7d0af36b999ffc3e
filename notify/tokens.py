"""Signed tokens for unsubscribe and preference links (itsdangerous). Pure.

One salt per purpose, so a token for one cannot be used for another. Keys come oldest first
from ``NOTIFY_SECRET_KEYS``: the newest signs, every listed key verifies, so rotation does not
break links already in inboxes. Payloads hold an opaque recipient id, never an address.
"""

from __future__ import annotations

from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from notify.categories import get_category

UNSUBSCRIBE_SALT = "notify.unsubscribe.v1"
PREFERENCES_SALT = "notify.preferences.v1"


class EssentialCategoryError(ValueError):
    """No unsubscribe token exists for an essential category."""


def unsubscribe_token(secret_keys: list[str], recipient_public_id: str, category: str) -> str:
    """A token that never expires and is never used up (a link scanner must not spend it)."""
    if get_category(category).essential:
        raise EssentialCategoryError(category)
    return str(
        URLSafeSerializer(secret_keys, salt=UNSUBSCRIBE_SALT).dumps([recipient_public_id, category])
    )


def preferences_token(secret_keys: list[str], recipient_public_id: str) -> str:
    """A token for the preference page; it carries its signing time and expires on read."""
    return str(
        URLSafeTimedSerializer(secret_keys, salt=PREFERENCES_SALT).dumps(recipient_public_id)
    )
