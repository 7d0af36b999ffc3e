"""Absolute URLs that go into emails, built from ``NOTIFY_PUBLIC_URL``. Pure."""

from __future__ import annotations

from notify.config import Settings
from notify.message.tokens import preferences_token, unsubscribe_token


def unsubscribe_url(
    settings: Settings, recipient_public_id: str, category: str, campaign_id: int | None = None
) -> str:
    token = unsubscribe_token(settings.secret_key_list, recipient_public_id, category, campaign_id)
    return f"{settings.public_url}/u/{token}"


def preferences_url(settings: Settings, recipient_public_id: str) -> str:
    token = preferences_token(settings.secret_key_list, recipient_public_id)
    return f"{settings.public_url}/preferences/{token}"
