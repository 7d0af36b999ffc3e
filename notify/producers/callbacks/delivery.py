"""Sending due callback events to their endpoints: at least once, in the convention's shape,
with exponential backoff and jitter until the event's ``give_up_at``, then ``dead``.

A batch is claimed in one short transaction (each claimed event's next attempt is pushed past
the time a delivery may take, so no other worker takes it meanwhile), sent outside any
transaction, and each result recorded in its own. A worker killed mid-batch leaves its events
due again after that lease: a receiver may see an event twice, never zero times, and tells
them apart by ``webhook-id``. Logs name the endpoint and event ids, never the URL (it may
hold a token) or the body.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.crypto import UndecryptableError
from notify.db import SessionFactory, on_postgresql
from notify.models import (
    ApiKey,
    CallbackAttempt,
    CallbackEndpoint,
    CallbackEvent,
    CallbackEventStatus,
)
from notify.models.base import opened, stored, utcnow
from notify.observability import metrics
from notify.producers.callbacks import endpoints, signing
from notify.producers.callbacks.events import body_of, user_ids

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 5.0
LONGEST_RETRY_SECONDS = 3600.0
LEASE_MARGIN_SECONDS = 30.0
USER_AGENT = "notify-callbacks/1"


def retry_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: 5 s doubling up to an
    hour, each scaled by a random factor between 0.5 and 1.5 (so receivers that come back are
    not hit by every sender at once)."""
    base = min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1))
    factor: float = (rng or random).uniform(0.5, 1.5)
    return float(base * factor)


@dataclass(frozen=True)
class _Due:
    id: str
    endpoint_id: int
    type: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    give_up_at: datetime


@dataclass
class Report:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    ids: list[str] = field(default_factory=list)


def claim_due(session: Session, limit: int, lease_seconds: float) -> list[_Due]:
    """Up to ``limit`` due events, oldest due first, each counted as one more attempt and held
    for ``lease_seconds``. Two statements: an UPDATE's RETURNING keeps no order, and the
    order matters, since a batch that runs out of time gives back what it has not reached."""
    now = utcnow()
    due = (
        select(CallbackEvent.id)
        .where(
            CallbackEvent.status == CallbackEventStatus.PENDING,
            CallbackEvent.next_attempt_at <= now,
        )
        .order_by(CallbackEvent.next_attempt_at)
        .limit(limit)
    )
    if on_postgresql(session):
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    if not ids:
        return []
    statement = (
        update(CallbackEvent)
        .where(
            CallbackEvent.id.in_(ids),
            CallbackEvent.status == CallbackEventStatus.PENDING,
            CallbackEvent.next_attempt_at <= now,
        )
        .values(
            attempts=CallbackEvent.attempts + 1,
            next_attempt_at=now + timedelta(seconds=lease_seconds),
        )
        .returning(
            CallbackEvent.id,
            CallbackEvent.endpoint_id,
            CallbackEvent.type,
            CallbackEvent.payload,
            CallbackEvent.attempts,
            CallbackEvent.created_at,
            CallbackEvent.give_up_at,
        )
        .execution_options(synchronize_session=False)
    )
    position = {event_id: index for index, event_id in enumerate(ids)}
    claimed = [_Due(*row) for row in session.execute(statement)]
    return sorted(claimed, key=lambda event: position[event.id])


@dataclass(frozen=True)
class _Target:
    url: str
    secrets: list[str] | None  # None: no data key of this worker decrypts them
    live: bool


UNREADABLE_SECRETS = (
    "not sent: no data key of this worker decrypts the endpoint's signing secrets; retried"
)


def _targets(session: Session, endpoint_ids: set[int]) -> dict[int, _Target]:
    """Each endpoint's URL and secrets; not live once removed or once its key is revoked.
    Secrets are decrypted endpoint by endpoint, so one stored under a data key this worker
    lacks leaves that endpoint without secrets (``None``), not the whole batch unreadable."""
    rows = session.execute(
        select(
            CallbackEndpoint.id,
            CallbackEndpoint.url,
            stored(CallbackEndpoint.secrets),
            CallbackEndpoint.disabled_at,
            ApiKey.revoked_at,
        )
        .join(ApiKey, ApiKey.id == CallbackEndpoint.api_key_id)
        .where(CallbackEndpoint.id.in_(endpoint_ids))
    )
    targets = {}
    for row in rows:
        try:
            secrets: list[str] | None = endpoints.listed_secrets(
                opened(CallbackEndpoint.secrets, row.secrets)
            )
        except UndecryptableError:
            secrets = None
        live = row.disabled_at is None and row.revoked_at is None
        targets[row.id] = _Target(row.url, secrets, live)
    return targets


@dataclass(frozen=True)
class _Answer:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _send(
    client: httpx.Client,
    target: _Target,
    event: _Due,
    development: bool,
    people: Mapping[int, str | None],
) -> _Answer:
    started = time.monotonic()

    def answer(status: int | None, error: str | None) -> _Answer:
        return _Answer(status, error, int((time.monotonic() - started) * 1000))

    url, pin = target.url, dict[str, Any]()
    if not development:
        try:
            url, pin = pinned(target.url)
        except endpoints.CallbackUrlError as error:
            return answer(None, f"not sent: the URL {error}")
        except Exception as error:  # a URL httpx cannot read: recorded, retried like any failure
            return answer(None, f"not sent: the URL cannot be used ({type(error).__name__})")
    body = json.dumps(
        body_of(event.type, event.payload, event.created_at, people),
        separators=(",", ":"),
        ensure_ascii=False,
    )
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signing.headers(event.id, body, target.secrets or [], utcnow()),
    }
    try:
        response = client.post(
            url,
            content=body.encode("utf-8"),
            headers={**headers, **pin.get("headers", {})},
            extensions=pin.get("extensions", {}),
        )
    except httpx.TimeoutException:
        return answer(None, "timed out")
    except httpx.HTTPError as error:
        return answer(None, f"could not connect ({type(error).__name__})")
    except Exception as error:  # a URL httpx cannot use (a bad international name): recorded
        return answer(None, f"not sent: the URL cannot be used ({type(error).__name__})")
    return answer(
        response.status_code, None if response.is_success else f"HTTP {response.status_code}"
    )


def pinned(url: str) -> tuple[str, dict[str, Any]]:
    """``url`` with its host replaced by the public address it was checked to resolve to, and
    what keeps the request addressed to the name: the ``Host`` header and the TLS server name
    (certificates are still verified against the name)."""
    parsed = httpx.URL(url)
    address = endpoints.public_address(parsed.host)
    host = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    pin = {"headers": {"host": host}, "extensions": {"sni_hostname": parsed.host}}
    return str(parsed.copy_with(host=address)), pin


def _record(
    session: Session, event: _Due, answer: _Answer, rng: random.Random
) -> CallbackEventStatus:
    now = utcnow()
    session.add(
        CallbackAttempt(
            event_id=event.id,
            endpoint_id=event.endpoint_id,
            attempted_at=now,
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=answer.duration_ms,
        )
    )
    if answer.delivered:
        status, next_at = CallbackEventStatus.DELIVERED, now
    else:
        next_at = now + timedelta(seconds=retry_delay(event.attempts, rng))
        status = (
            CallbackEventStatus.DEAD if next_at > event.give_up_at else CallbackEventStatus.PENDING
        )
    session.execute(
        update(CallbackEvent)
        .where(CallbackEvent.id == event.id)
        .values(
            status=status,
            next_attempt_at=next_at,
            delivered_at=now if answer.delivered else None,
        )
        .execution_options(synchronize_session=False)
    )
    return status


def deliver_due(
    sessions: SessionFactory,
    settings: Settings,
    client: httpx.Client,
    *,
    budget_seconds: float = 20.0,
    rng: random.Random | None = None,
) -> Report:
    """Send what is due, a batch at a time, until nothing is due or ``budget_seconds`` have
    passed: after that no event is started, and the rest of the batch is given back due at
    once (its attempt not counted), for the next task."""
    chance = rng or random.Random()  # noqa: S311 (jitter, not a secret)
    report = Report()
    deadline = time.monotonic() + budget_seconds
    development = settings.env == "development"
    lease = settings.callback_timeout_seconds + LEASE_MARGIN_SECONDS
    while time.monotonic() < deadline:
        with sessions.begin() as session:
            batch = claim_due(session, settings.callback_batch_size, lease)
            targets = _targets(session, {event.endpoint_id for event in batch}) if batch else {}
            people = user_ids(session, [event.payload for event in batch])
        if not batch:
            break
        unreadable: set[int] = set()  # endpoints already logged in this batch
        for position, event in enumerate(batch):
            if time.monotonic() >= deadline:
                _give_back(sessions, [later.id for later in batch[position:]])
                return report
            target = targets.get(event.endpoint_id)
            if target is None or not target.live:
                answer = _Answer(None, "not sent: the endpoint or its key was removed", 0)
                event = _Due(**{**event.__dict__, "give_up_at": utcnow()})  # nothing to retry
            elif target.secrets is None:  # retried like a refusal: a worker with the key sends it
                answer = _Answer(None, UNREADABLE_SECRETS, 0)
                if event.endpoint_id not in unreadable:
                    unreadable.add(event.endpoint_id)
                    log.error(
                        "callback endpoint %s: no data key of this worker decrypts its signing"
                        " secrets; its events are retried until their window closes",
                        event.endpoint_id,
                    )
            else:
                answer = _send(client, target, event, development, people)
            with sessions.begin() as session:
                status = _record(session, event, answer, chance)
            report.ids.append(event.id)
            if status == CallbackEventStatus.DELIVERED:
                report.delivered += 1
                metrics.CALLBACK_DELIVERIES.labels("delivered").inc()
            elif status == CallbackEventStatus.DEAD:
                report.dead += 1
                metrics.CALLBACK_DELIVERIES.labels("dead").inc()
                log.warning("callback event %s to endpoint %s is dead", event.id, event.endpoint_id)
            else:
                report.retrying += 1
                metrics.CALLBACK_DELIVERIES.labels("retrying").inc()
                log.info(
                    "callback event %s to endpoint %s: %s; retrying",
                    event.id,
                    event.endpoint_id,
                    answer.error,
                )
    return report


def _give_back(sessions: SessionFactory, event_ids: list[str]) -> None:
    with sessions.begin() as session:
        session.execute(
            update(CallbackEvent)
            .where(
                CallbackEvent.id.in_(event_ids),
                CallbackEvent.status == CallbackEventStatus.PENDING,
            )
            .values(attempts=CallbackEvent.attempts - 1, next_attempt_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def replay(session: Session, event: CallbackEvent, retry: timedelta) -> None:
    """Send ``event`` again as soon as a worker can, retried for ``retry`` from now (a
    delivered or dead event included); its id stays the same."""
    now = utcnow()
    event.status = CallbackEventStatus.PENDING
    event.next_attempt_at = now
    event.give_up_at = now + retry
    event.delivered_at = None


def new_client(settings: Settings) -> httpx.Client:
    """One client per worker process: no redirects followed, the timeout on every phase."""
    return httpx.Client(
        timeout=httpx.Timeout(settings.callback_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
    )
