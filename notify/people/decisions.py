"""Explanations: what the eligibility rule saw and decided for one person and one category.

A notification's decision is recorded when it is claimed (:func:`record_claims`), in the claim's
transaction, and read back by ``GET /v1/notifications/{id}/explain`` and the console; the same
record for a template and a person *now*, without sending, is :func:`explain_now`.

The record holds categories, reasons, ids of consent events and campaigns, times, and the
person's quiet-hours window with its time zone (erasure deletes the records of an erased
person's notifications): never an address, a name or a token. Its ``sends`` and ``blocked``
are the claim's own verdict. The facts beside them (the stored choice, the suppression entry,
``rule``) are read by the next statement of the same transaction, so on PostgreSQL (read
committed) a change committed between the two statements, a few milliseconds apart, can show in
the facts and not in the verdict.

Data functions take the session first and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from notify.categories import get_category
from notify.db import insert_on_conflict
from notify.models import (
    ConsentEvent,
    Notification,
    NotificationDecision,
    Pause,
    Preference,
    Recipient,
    Suppression,
)
from notify.models.notifications import month_bounds
from notify.people import eligibility, quiet_hours
from notify.people.eligibility import CategoryKey
from notify.people.suppressions import ALL_CATEGORIES

CLAIM, DRY_RUN = "claim", "dry_run"  # who decided: a worker's claim, or an explain request
CHOICE_ACTIONS = ("subscribed", "unsubscribed")  # consent-log actions that set a stored choice
SUPPRESSED_ACTION = "suppressed:"  # prefix of the consent-log action that listed an address


@dataclass(frozen=True)
class CampaignState:
    """The campaign a message belongs to, as the claim saw it."""

    id: int
    status: str
    rate_per_second: float | None


FactsQuery = Select[*tuple[Any, ...]]  # a statement of :func:`_facts`'s columns and more

_ChoiceEvent = aliased(ConsentEvent, name="choice_event")
_SuppressionEvent = aliased(ConsentEvent, name="suppression_event")


def _latest_event(category: CategoryKey, action: ColumnElement[bool]) -> Any:
    return (
        select(func.max(ConsentEvent.id))
        .where(ConsentEvent.recipient_id == Recipient.id, ConsentEvent.category == category, action)
        .scalar_subquery()
    )


def _facts(category: CategoryKey) -> FactsQuery:
    """The person's facts for ``category`` (a key or a column), one row per recipient, over
    :class:`Recipient` with outer joins: the caller adds the ``FROM`` and the ``WHERE``."""
    return select(
        Recipient.id.label("recipient_id"),
        Recipient.erased_at,
        Recipient.email.is_not(None).label("has_address"),
        Preference.subscribed,
        Preference.updated_at.label("choice_at"),
        Preference.source.label("choice_source"),
        _ChoiceEvent.id.label("choice_event_id"),
        _ChoiceEvent.created_at.label("choice_event_at"),
        _ChoiceEvent.source.label("choice_event_source"),
        Suppression.reason.label("suppression"),
        Suppression.created_at.label("suppression_at"),
        _SuppressionEvent.id.label("suppression_event_id"),
        _SuppressionEvent.action.label("suppression_event_action"),
        _SuppressionEvent.source.label("suppression_event_source"),
        Pause.until.label("paused_until"),
        Recipient.quiet_hours_start,
        Recipient.quiet_hours_end,
        Recipient.timezone,
    )


def _joined(statement: FactsQuery, category: CategoryKey) -> FactsQuery:
    choice = _latest_event(category, ConsentEvent.action.in_(CHOICE_ACTIONS))
    listed = _latest_event(ALL_CATEGORIES, ConsentEvent.action.startswith(SUPPRESSED_ACTION))
    return (
        statement.outerjoin(
            Preference,
            and_(Preference.recipient_id == Recipient.id, Preference.category == category),
        )
        .outerjoin(Suppression, Suppression.address_hash == Recipient.email_hash)
        .outerjoin(_ChoiceEvent, _ChoiceEvent.id == choice)
        .outerjoin(_SuppressionEvent, _SuppressionEvent.id == listed)
        .outerjoin(Pause, and_(Pause.recipient_id == Recipient.id, Pause.category == category))
    )


def _facts_of(
    row: Any, category_key: str, defaults: frozenset[str], now: datetime
) -> eligibility.Facts:
    return eligibility.facts_for(
        category_key,
        defaults,
        erased=row.erased_at is not None,
        has_address=bool(row.has_address),
        suppression=None if row.suppression is None else str(row.suppression),
        stored_choice=row.subscribed,
        paused=row.paused_until is not None and row.paused_until > now,
    )


def _quiet_hours(row: Any, default_zone: str) -> dict[str, str] | None:
    try:
        window = quiet_hours.parse(row.quiet_hours_start, row.quiet_hours_end)
    except quiet_hours.QuietHoursError:  # as holds_until: a bad stored window holds nothing
        return None
    if window is None:
        return None
    return {"window": window.text, "time_zone": row.timezone or default_zone}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def build_record(
    row: Any,
    category_key: str,
    defaults: frozenset[str],
    *,
    blocked: str | None,
    decided_at: datetime,
    decided_by: str,
    default_zone: str,
    held_until: datetime | None = None,
    campaign: CampaignState | None = None,
) -> dict[str, Any]:
    """The explanation of one decision: ``blocked`` is the verdict (None: it may go out),
    ``held_until`` the end of the quiet hours it waits for, ``row`` the facts read by
    :func:`_facts`."""
    category = get_category(category_key)
    facts = _facts_of(row, category_key, defaults, decided_at)
    choice = None
    if row.subscribed is not None:
        event = None
        if row.choice_event_id is not None:
            event = {
                "id": row.choice_event_id,
                "at": _iso(row.choice_event_at),
                "route": row.choice_event_source,
            }
        choice = {
            "subscribed": bool(row.subscribed),
            "since": _iso(row.choice_at),
            "source": row.choice_source,
            "consent_event": event,
        }
    suppression = None
    if row.suppression is not None:
        reason = str(row.suppression)
        # The consent log names the route only where this person's own event listed the
        # address for this reason (an address can be listed before it was theirs).
        own = row.suppression_event_action == f"{SUPPRESSED_ACTION}{reason}"
        suppression = {
            "reason": reason,
            "since": _iso(row.suppression_at),
            "source": row.suppression_event_source if own else None,
            "consent_event_id": row.suppression_event_id if own else None,
        }
    return {
        "decided_by": decided_by,
        "decided_at": decided_at.isoformat(),
        "sends": blocked is None and held_until is None,
        "blocked": blocked,
        "delayed_until": _iso(held_until),
        "rule": eligibility.deciding_rule(facts).value,
        "category": {
            "key": category.key,
            "essential": category.essential,
            "default": "subscribed" if category_key in defaults else "unsubscribed",
            "lane": category.lane.value,
        },
        "person": {"erased": facts.erased, "has_address": facts.has_address},
        "choice": choice,
        "suppression": suppression,
        "pause": None if row.paused_until is None else {"until": _iso(row.paused_until)},
        "quiet_hours": _quiet_hours(row, default_zone),
        "campaign": None
        if campaign is None
        else {
            "id": campaign.id,
            "status": campaign.status,
            "rate_per_second": campaign.rate_per_second,
        },
    }


def record_claims(
    session: Session,
    verdicts: Mapping[str, str | None],
    defaults: frozenset[str],
    *,
    now: datetime,
    default_zone: str,
    held: Mapping[str, datetime] | None = None,
    campaign: CampaignState | None = None,
) -> None:
    """Record the decision for each claimed notification: ``verdicts`` maps its id to the
    claim's verdict (None: it may go out; else the reason it was suppressed), ``held`` the ids
    quiet hours hold back to when. Two statements for the whole group (one read, one upsert);
    a notification decided again replaces its record."""
    if not verdicts:
        return
    ids = list(verdicts)
    since, until = month_bounds(ids) or (ANY_TIME_FROM, ANY_TIME_UNTIL)
    found = session.execute(_claimed_facts(), {"ids": ids, "since": since, "until": until})
    rows = [
        {
            "notification_id": row.notification_id,
            "notification_created_at": row.notification_created_at,
            "decided_at": now,
            "record": build_record(
                row,
                row.category,
                defaults,
                blocked=verdicts[row.notification_id],
                decided_at=now,
                decided_by=CLAIM,
                default_zone=default_zone,
                held_until=(held or {}).get(row.notification_id),
                campaign=campaign,
            ),
        }
        for row in found
    ]
    if not rows:
        return
    # An executemany (pipelined by psycopg): half the time of one statement with many VALUES
    # rows, which is compiled again for each group.
    upsert = insert_on_conflict(session, NotificationDecision)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["notification_id", "notification_created_at"],
            set_={"decided_at": upsert.excluded.decided_at, "record": upsert.excluded.record},
        ),
        rows,
    )


ANY_TIME_FROM = datetime(1970, 1, 1, tzinfo=UTC)  # bounds that leave no row out
ANY_TIME_UNTIL = datetime(9999, 1, 1, tzinfo=UTC)


@cache
def _claimed_facts() -> FactsQuery:
    """:func:`_facts` for the notifications in the bound list ``ids``, made from ``since`` to
    before ``until`` (their months: the partitions to read), each for its own category; built
    once (building it costs more than running it)."""
    return _joined(
        _facts(Notification.category)
        .add_columns(
            Notification.id.label("notification_id"),
            Notification.created_at.label("notification_created_at"),
            Notification.category,
        )
        .select_from(Notification)
        .join(Recipient, Recipient.id == Notification.recipient_id),
        Notification.category,
    ).where(
        Notification.id.in_(bindparam("ids", expanding=True)),
        Notification.created_at >= bindparam("since"),
        Notification.created_at < bindparam("until"),
    )


def recorded(session: Session, notification_id: str) -> dict[str, Any] | None:
    """The decision recorded at the notification's latest claim, or None before any."""
    record = session.scalar(
        select(NotificationDecision.record).where(
            NotificationDecision.notification_id == notification_id
        )
    )
    return None if record is None else dict(record)


def explain_now(
    session: Session,
    recipient_id: int,
    category_key: str,
    defaults: frozenset[str],
    *,
    now: datetime,
    default_zone: str,
) -> dict[str, Any] | None:
    """What a message of ``category_key`` to the person would meet now, without sending or
    writing anything (a dry run); None when there is no such recipient. ``default_zone``
    stands in for the person's time zone when they have none (``NOTIFY_DEFAULT_TIMEZONE``)."""
    row = session.execute(
        _joined(_facts(category_key).select_from(Recipient), category_key).where(
            Recipient.id == recipient_id
        )
    ).one_or_none()
    if row is None:
        return None
    blocked = eligibility.why_not(_facts_of(row, category_key, defaults, now))
    held_until = None
    if blocked is None:
        zone = row.timezone or default_zone
        held_until = quiet_hours.holds_until(
            category_key, row.quiet_hours_start, row.quiet_hours_end, zone, now
        )
    return build_record(
        row,
        category_key,
        defaults,
        blocked=None if blocked is None else blocked.value,
        decided_at=now,
        decided_by=DRY_RUN,
        default_zone=default_zone,
        held_until=held_until,
    )


@dataclass(frozen=True)
class Explained:
    """One of a person's notifications with the decision its latest claim recorded."""

    id: str
    template: str
    category: str
    status: str
    reason: str | None
    created_at: datetime
    record: dict[str, Any] | None


def recent(session: Session, recipient_id: int, limit: int = 20) -> list[Explained]:
    """The person's latest notifications, newest first, each with its decision (None before
    its first claim)."""
    rows = session.execute(
        select(
            Notification.id,
            Notification.template,
            Notification.category,
            Notification.status,
            Notification.reason,
            Notification.created_at,
            NotificationDecision.record,
        )
        .outerjoin(
            NotificationDecision,
            and_(
                NotificationDecision.notification_id == Notification.id,
                NotificationDecision.notification_created_at == Notification.created_at,
            ),
        )
        .where(Notification.recipient_id == recipient_id)
        .order_by(Notification.created_at.desc(), Notification.id)
        .limit(limit)
    )
    return [
        Explained(
            id=row.id,
            template=row.template,
            category=row.category,
            status=str(row.status.value),
            reason=row.reason,
            created_at=row.created_at,
            record=None if row.record is None else dict(row.record),
        )
        for row in rows
    ]
