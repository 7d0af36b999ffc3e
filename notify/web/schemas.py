"""Request and response bodies of the JSON API. Unknown fields are refused (422)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from notify.people.user_row import Email as Email
from notify.people.user_row import Locale as Locale
from notify.people.user_row import UserFields
from notify.people.user_row import UserId as UserId

CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1)]
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


# The shared user model under the name the OpenAPI document has always published.
class UserIn(UserFields):
    pass


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
