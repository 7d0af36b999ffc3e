"""``/v1/users/{user_id}/preferences`` and ``/consent``: read and change what a person receives."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from notify.categories import CATEGORIES
from notify.message.template_data import InvalidFieldError
from notify.models import ConsentSource, Recipient
from notify.models.base import utcnow
from notify.people import consent, pauses, preferences, recipients
from notify.people.consent import Origin
from notify.producers.api_keys import Caller
from notify.web.auth import require_scope
from notify.web.responses import API_ERRORS, also
from notify.web.schemas import UserId
from notify.web.state import web_state

router = APIRouter(prefix="/v1/users", tags=["preferences"], responses=API_ERRORS)
Reader = Annotated[Caller, Depends(require_scope("preferences:read"))]
Writer = Annotated[Caller, Depends(require_scope("preferences:write"))]


class CategoryState(BaseModel):
    subscribed: bool
    essential: bool
    changed_at: datetime | None = None
    source: str | None = None
    paused_until: datetime | None = None  # the person paused it: none of it until then


class QuietHoursOut(BaseModel):
    start: str  # HH:MM, in the person's time zone (NOTIFY_DEFAULT_TIMEZONE when they have none)
    end: str


class PreferencesOut(BaseModel):
    user_id: str
    categories: dict[str, CategoryState]
    quiet_hours: QuietHoursOut | None = None  # optional mail waits for their end


class ConsentEventOut(BaseModel):
    category: str
    action: str
    source: str
    actor: str | None
    notification_id: str | None
    campaign_id: int | None
    detail: str | None
    created_at: datetime
    category_version: str | None = None  # of the category's wording (None: not recorded)
    category_wording: str | None = None  # that wording, in English


def _out(session: Session, recipient: Recipient, defaults: frozenset[str]) -> PreferencesOut:
    states = preferences.current(session, recipient.id, defaults)
    paused = pauses.paused_until(session, recipient.id, utcnow())
    categories = {
        key: CategoryState(
            subscribed=state.subscribed,
            essential=state.category.essential,
            changed_at=state.changed_at,
            source=state.source,
            paused_until=paused.get(key),
        )
        for key, state in states.items()
    }
    quiet = None
    if recipient.quiet_hours_start and recipient.quiet_hours_end:
        quiet = QuietHoursOut(start=recipient.quiet_hours_start, end=recipient.quiet_hours_end)
    return PreferencesOut(user_id=recipient.user_id, categories=categories, quiet_hours=quiet)


def _changes_schema() -> dict[str, Any]:
    """The body :func:`_checked_changes` accepts, as JSON Schema: at least one known category,
    each ``true`` or ``false``, and an essential one only ``true`` (it cannot be turned off)."""
    properties: dict[str, Any] = {
        key: {"type": "boolean", "const": True, "description": f"{category.label}: always on"}
        if category.essential
        else {"type": "boolean", "description": category.label}
        for key, category in CATEGORIES.items()
    }
    return {"properties": properties, "additionalProperties": False, "minProperties": 1}


def _checked_changes(body: dict[str, Any]) -> dict[str, bool]:
    """Refuse the whole request (422) if any key is unknown, not a boolean, or essential-off."""
    if not body:
        raise InvalidFieldError((), 'name at least one category, e.g. {"product_updates": false}')
    for key, value in body.items():
        category = CATEGORIES.get(key)
        if category is None:
            raise InvalidFieldError((key,), f"unknown category; known: {', '.join(CATEGORIES)}")
        if not isinstance(value, bool):
            raise InvalidFieldError((key,), "must be true or false")
        if category.essential and not value:
            raise InvalidFieldError(
                (key,), f"{category.label} are essential and cannot be turned off"
            )
    return {key: value for key, value in body.items() if not CATEGORIES[key].essential}


@router.get("/{user_id}/preferences", response_model=PreferencesOut, responses=also(404))
def get_preferences(user_id: UserId, request: Request, _: Reader) -> PreferencesOut:
    state = web_state(request)
    with state.sessions() as session:
        recipient = recipients.require_live(session, user_id)
        return _out(session, recipient, state.settings.default_subscriptions)


@router.patch("/{user_id}/preferences", response_model=PreferencesOut, responses=also(400, 404))
def patch_preferences(
    user_id: UserId,
    request: Request,
    caller: Writer,
    body: Annotated[
        dict[str, Any],
        Body(examples=[{"product_updates": False}], json_schema_extra=_changes_schema()),
    ],
) -> PreferencesOut:
    """Change categories; all or nothing. Each change is logged with the calling key's name."""
    changes = _checked_changes(body)
    state = web_state(request)
    defaults = state.settings.default_subscriptions
    origin = Origin(ConsentSource.API, actor=caller.name)
    with state.sessions.begin() as session:
        recipient = recipients.require_live(session, user_id)
        for key, subscribed in changes.items():
            preferences.choose(
                session,
                recipient.id,
                key,
                subscribed,
                origin,
                defaults=defaults,
                hash_key=state.settings.hash_key,
            )
        return _out(session, recipient, defaults)


@router.get("/{user_id}/consent", response_model=list[ConsentEventOut], responses=also(404))
def get_consent(user_id: UserId, request: Request, _: Reader) -> list[ConsentEventOut]:
    """Every recorded change for this person, newest first, with the version of the
    category's wording each was made under and that wording."""
    with web_state(request).sessions() as session:
        events = consent.history(session, recipients.require_live(session, user_id).id)
        return [
            ConsentEventOut.model_validate(event, from_attributes=True).model_copy(
                update=consent.wording_seen(event)
            )
            for event in events
        ]
