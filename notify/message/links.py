"""Absolute URLs that go into emails, built from ``NOTIFY_PUBLIC_URL``, and the addresses mail
comes back to, on ``NOTIFY_INBOUND_DOMAIN``. Pure."""

from __future__ import annotations

from email.utils import parseaddr

from notify.config import Settings
from notify.message import return_addresses
from notify.message.tokens import preferences_token, unsubscribe_token


def unsubscribe_url(
    settings: Settings, recipient_public_id: str, category: str, campaign_id: int | None = None
) -> str:
    token = unsubscribe_token(settings.secret_key_list, recipient_public_id, category, campaign_id)
    return f"{settings.public_url}/u/{token}"


def preferences_url(settings: Settings, recipient_public_id: str) -> str:
    token = preferences_token(settings.secret_key_list, recipient_public_id)
    return f"{settings.public_url}/preferences/{token}"


def unsubscribe_mailto(
    settings: Settings, recipient_public_id: str, category: str, campaign_id: int | None = None
) -> str | None:
    """The ``mailto:`` address of ``List-Unsubscribe``; None without an inbound domain."""
    if not settings.inbound_domain:
        return None
    return return_addresses.unsubscribe_address(
        settings.secret_key_list,
        recipient_public_id,
        category,
        campaign_id,
        settings.inbound_domain,
    )


def envelope_sender(settings: Settings, notification_id: str, category: str) -> str:
    """MAIL FROM of one message: its own bounce address (VERP) with an inbound domain, else
    the category's From address."""
    if settings.inbound_domain:
        return return_addresses.bounce_address(
            settings.secret_key_list, notification_id, settings.inbound_domain
        )
    return parseaddr(settings.sender_for(category))[1]
