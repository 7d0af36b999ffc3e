"""What a worker needs to build one message, as plain data (no ORM objects). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notify.message.personal import PersonalFields


@dataclass(frozen=True)
class Claimed:
    """What the worker needs to build one message, read under the claim."""

    id: str
    template: str
    category: str
    data: dict[str, Any]
    attempts: int
    message_id: str
    email: str | None
    recipient_id: int
    recipient_public_id: str
    locale: str | None
    erased: bool
    suppression: str | None = None  # the address's suppression-list reason, read with the claim
    subscribed: bool | None = None  # the person's choice for the category (None: the default)
    personal: PersonalFields = field(default_factory=PersonalFields)  # recipient.* in templates
    campaign_id: int | None = None  # a campaign's message: its unsubscribe link names it
    time_zone: str | None = None  # the person's IANA zone, for dates and times in the message
    created_at: datetime | None = None  # when the API accepted it (for the delivery latency)
    request_id: str | None = None  # the API request that made it (for log lines)
    paused: bool = False  # the person paused the category past the claim's time
    quiet_hours: tuple[str | None, str | None] = (None, None)  # the person's window, HH:MM
