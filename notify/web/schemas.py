"""Request and response bodies of the JSON API. Unknown fields are refused (422)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from notify.mime import has_header_break

_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def normalised_email(value: str) -> str:
    """Syntax and IDNA check without DNS (no network on the hot path); returns the normal form."""
    if has_header_break(value):
        raise ValueError("must not contain line breaks")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(str(error)) from None


def known_timezone(value: str) -> str:
    if value not in available_timezones():
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone such as Europe/London") from None
    return value


def locale_tag(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError("is not a language tag such as en or pt-BR")
    return value


Email = Annotated[str, Field(max_length=320), AfterValidator(normalised_email)]
UserId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s/]+$")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NotificationIn(Strict):
    template: str = Field(max_length=100)
    user_id: UserId
    email: Email | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: IdempotencyKey | None = None


class NotificationAccepted(BaseModel):
    id: str
    status: str


class NotificationOut(BaseModel):
    id: str
    status: str
    reason: str | None
    attempts: int
    template: str
    category: str
    created_at: datetime
    sent_at: datetime | None
    message_id: str | None


class UserIn(Strict):
    email: Email
    locale: Annotated[str, Field(max_length=35), AfterValidator(locale_tag)] | None = None
    timezone: Annotated[str, Field(max_length=64), AfterValidator(known_timezone)] | None = None


class UserOut(BaseModel):
    user_id: str
    email: str | None
    locale: str | None
    timezone: str | None
    created_at: datetime
    updated_at: datetime


class TemplateOut(BaseModel):
    name: str
    category: str
    essential: bool
    description: str
    variables: list[str]
