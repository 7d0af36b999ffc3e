"""The callbacks outbox: one row per event and endpoint, written in the transaction of the
change it reports, so an event exists exactly when its change was committed.

Emitting reads the registered endpoints in that same transaction (a small table), so an
endpoint gets every event of changes committed after it was registered, and none from before.
Payloads hold ids, statuses and reasons: never an address, a name or template data. A person
is stored by notify's own row id and named by the producer's ``user_id`` only when the event
is sent (:func:`body_of`), so erasing the person leaves no trace of that id here.

Data functions take the session first and never commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Exists, Select, exists, insert, select
from sqlalchemy.orm import Session

from notify.models import ApiKey, CallbackEndpoint, CallbackEvent, CallbackEventStatus, Recipient
from notify.models.base import utcnow


class EventType(StrEnum):
    SENT = "notification.sent"  # the relay accepted the message
    FAILED = "notification.failed"  # it will not be sent (reason says why)
    SUPPRESSED = "notification.suppressed"  # not sent by a rule (reason: unsubscribed, ...)
    BOUNCED = "notification.bounced"  # the relay or a later report said the address is bad
    COMPLAINED = "notification.complained"  # the person marked it as spam
    PREFERENCE_CHANGED = "preference.changed"  # a person changed or lost a subscription


NOTIFICATION_EVENTS = frozenset(
    {
        EventType.SENT,
        EventType.FAILED,
        EventType.SUPPRESSED,
        EventType.BOUNCED,
        EventType.COMPLAINED,
    }
)
EVENT_ID_PREFIX = "msg_"
RECIPIENT_KEY = "recipient"  # in a stored payload: notify's row id of the person
DEFAULT_RETRY = timedelta(hours=25)


def new_event_id() -> str:
    return EVENT_ID_PREFIX + secrets.token_urlsafe(18)


@dataclass(frozen=True)
class NotificationChange:
    """A notification a key sent, and what became of it."""

    notification_id: str
    api_key_id: int | None
    status: str
    reason: str | None = None
    template: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class _Subscriber:
    endpoint_id: int
    api_key_id: int
    events: frozenset[str]


def _live_endpoints(*columns: Any) -> Select[Any]:
    """``columns`` of the live endpoints: not disabled, of keys that are not revoked."""
    return (
        select(*columns)
        .select_from(CallbackEndpoint)
        .join(ApiKey, ApiKey.id == CallbackEndpoint.api_key_id)
        .where(CallbackEndpoint.disabled_at.is_(None), ApiKey.revoked_at.is_(None))
    )


def any_live_endpoint() -> Exists:
    """Whether any endpoint is live, as an expression for a larger statement: a change made
    while none is can skip emitting, and so the read of the endpoints, altogether."""
    return exists(_live_endpoints(CallbackEndpoint.id))


def _subscribers(session: Session) -> list[_Subscriber]:
    """The live endpoints of keys that are not revoked."""
    rows = session.execute(
        _live_endpoints(CallbackEndpoint.id, CallbackEndpoint.api_key_id, CallbackEndpoint.events)
    )
    return [_Subscriber(row[0], row[1], frozenset(row[2] or ())) for row in rows]


def _write(
    session: Session, rows: Iterable[tuple[int, EventType, dict[str, Any]]], retry: timedelta
) -> int:
    now = utcnow()
    values = [
        {
            "id": new_event_id(),
            "endpoint_id": endpoint_id,
            "type": event.value,
            "payload": payload,
            "status": CallbackEventStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "give_up_at": now + retry,
            "created_at": now,
        }
        for endpoint_id, event, payload in rows
    ]
    if values:
        session.execute(insert(CallbackEvent), values)
    return len(values)


def notifications_changed(
    session: Session,
    event: EventType,
    changes: Sequence[NotificationChange],
    *,
    at: datetime | None = None,
    retry: timedelta = DEFAULT_RETRY,
) -> int:
    """Queue ``event`` for every endpoint of the key that sent each notification in
    ``changes`` and asked for it; how many events were written. Notifications no key sent
    (a campaign's) have no callbacks."""
    keyed = [change for change in changes if change.api_key_id is not None]
    if not keyed:
        return 0
    wanting: dict[int, list[int]] = {}
    for subscriber in _subscribers(session):
        if event in subscriber.events:
            wanting.setdefault(subscriber.api_key_id, []).append(subscriber.endpoint_id)
    if not wanting:
        return 0
    moment = (at or utcnow()).isoformat()
    rows = [
        (
            endpoint_id,
            event,
            {
                "id": change.notification_id,
                "status": change.status,
                "reason": change.reason,
                "template": change.template,
                "category": change.category,
                "at": moment,
            },
        )
        for change in keyed
        for endpoint_id in wanting.get(int(change.api_key_id or 0), ())
    ]
    return _write(session, rows, retry)


def preference_changed(
    session: Session,
    recipient_id: int | None,
    category: str,
    action: str,
    source: str,
    *,
    retry: timedelta = DEFAULT_RETRY,
) -> int:
    """Queue ``preference.changed`` for every endpoint that asked for it (any key: a person's
    choices concern every producer): the person's ``user_id``, the category (``*`` for all),
    what happened (``subscribed``, ``unsubscribed``, ``paused``, ``resumed``,
    ``suppressed:<reason>``, ``erased``) and the route it came by. Quiet hours, languages and
    the scanner guard's flags change no subscription and are not sent."""
    if recipient_id is None:
        return 0
    wanting = [
        subscriber.endpoint_id
        for subscriber in _subscribers(session)
        if EventType.PREFERENCE_CHANGED in subscriber.events
    ]
    if not wanting:
        return 0
    payload = {
        RECIPIENT_KEY: recipient_id,
        "category": category,
        "change": action,
        "source": source,
        "at": utcnow().isoformat(),
    }
    return _write(
        session, ((endpoint, EventType.PREFERENCE_CHANGED, payload) for endpoint in wanting), retry
    )


def user_ids(session: Session, payloads: Iterable[Mapping[str, Any]]) -> dict[int, str | None]:
    """The producer's ``user_id`` of each person the payloads name; None for an erased one."""
    wanted = {int(p[RECIPIENT_KEY]) for p in payloads if isinstance(p.get(RECIPIENT_KEY), int)}
    if not wanted:
        return {}
    rows = session.execute(
        select(Recipient.id, Recipient.user_id, Recipient.erased_at).where(Recipient.id.in_(wanted))
    )
    return {row[0]: None if row[2] is not None else row[1] for row in rows}


def body_of(
    event_type: str,
    payload: Mapping[str, Any],
    created_at: datetime,
    people: Mapping[int, str | None] | None = None,
) -> dict[str, Any]:
    """What a receiver gets: ``{"type", "timestamp", "data"}`` (the Standard Webhooks shape),
    the person named by their ``user_id`` (from ``people``, :func:`user_ids`)."""
    data = {key: value for key, value in payload.items() if key != RECIPIENT_KEY}
    if RECIPIENT_KEY in payload:
        data = {"user_id": (people or {}).get(payload[RECIPIENT_KEY]), **data}
    return {"type": event_type, "timestamp": created_at.isoformat(), "data": data}
