"""The consent log: one appended row for every change of what a person receives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.categories import CATEGORIES, current_version, wording
from notify.models import ConsentEvent
from notify.producers.callbacks import events as callback_events

SUSPECTED = "suspected_automated"  # a press of the unsubscribe page found in a scanner's burst
HELD = "held_for_confirmation"  # a press from a held source: asked to confirm, nothing changed
# Actions that change no subscription: no callback. (A pause does: it stops a category.)
NOT_A_SUBSCRIPTION = ("language:", "quiet_hours:", SUSPECTED, HELD)


@dataclass(frozen=True)
class Origin:
    """How a change came about: its source, and who or what caused it when that is known."""

    source: str
    actor: str | None = None
    notification_id: str | None = None
    campaign_id: int | None = None


def record(
    session: Session,
    recipient_id: int | None,
    category: str,
    action: str,
    origin: Origin,
    detail: str | None = None,
) -> ConsentEvent:
    """Append one event (never updated afterwards), with the version of the category's wording
    shown now, and queue ``preference.changed`` for the endpoints that asked for it, in the
    same transaction. The caller commits."""
    event = ConsentEvent(
        recipient_id=recipient_id,
        category=category,
        action=action,
        source=origin.source,
        actor=origin.actor,
        notification_id=origin.notification_id,
        campaign_id=origin.campaign_id,
        detail=detail,
        category_version=current_version(category),
    )
    session.add(event)
    if not action.startswith(NOT_A_SUBSCRIPTION):
        callback_events.preference_changed(session, recipient_id, category, action, origin.source)
    return event


def history(session: Session, recipient_id: int, limit: int = 1000) -> Sequence[ConsentEvent]:
    """A person's events, newest first."""
    return session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.recipient_id == recipient_id)
        .order_by(ConsentEvent.created_at.desc(), ConsentEvent.id.desc())
        .limit(limit)
    ).all()


def wording_seen(event: ConsentEvent) -> dict[str, str | None]:
    """The version of the category's wording the event was made under, and that wording
    (None where either is unknown), for the export and the consent log."""
    category = CATEGORIES.get(event.category)
    version = event.category_version
    text = None if category is None or version is None else wording(category, version)
    return {"category_version": version, "category_wording": text}
