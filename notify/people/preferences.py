"""Who wants which non-essential category. Essential categories are always on.

Data functions take the session first and never commit. :func:`set_subscription` is an upsert,
so two one-click requests racing for the same person both succeed, and it logs a consent event
only when the state actually changes (a repeated unsubscribe is a no-op).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    bindparam,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from notify.categories import CATEGORIES, Category, current_version, get_category
from notify.db import insert_on_conflict, on_postgresql
from notify.models import ConsentEvent, Preference, Recipient
from notify.models.base import utcnow
from notify.people import consent, eligibility, suppressions
from notify.people.consent import Origin
from notify.producers.callbacks import events as callback_events


class EssentialCategoryError(ValueError):
    """Essential categories cannot be switched off."""


@dataclass(frozen=True)
class PreferenceState:
    category: Category
    subscribed: bool
    changed_at: datetime | None = None
    source: str | None = None


def is_subscribed(category: Category, row: Preference | None, defaults: frozenset[str]) -> bool:
    """The person's state for ``category`` as the preference API shows it
    (:func:`notify.people.eligibility.wants`)."""
    stored = None if row is None else row.subscribed
    return eligibility.wants(category.essential, category.key in defaults, stored)


def current(
    session: Session, recipient_id: int, defaults: frozenset[str]
) -> dict[str, PreferenceState]:
    """Every category with the person's state (defaults where they never chose)."""
    rows = {
        row.category: row
        for row in session.scalars(
            select(Preference).where(Preference.recipient_id == recipient_id)
        )
    }
    states: dict[str, PreferenceState] = {}
    for key, category in CATEGORIES.items():
        row = None if category.essential else rows.get(key)
        states[key] = PreferenceState(
            category=category,
            subscribed=is_subscribed(category, row, defaults),
            changed_at=row.updated_at if row else None,
            source=row.source if row else None,
        )
    return states


def subscribed_to(
    session: Session, recipient_id: int, category_key: str, defaults: frozenset[str]
) -> bool:
    """One person, one category, read fresh (the send-time check)."""
    category = get_category(category_key)
    if category.essential:
        return True
    row = session.scalars(
        select(Preference).where(
            Preference.recipient_id == recipient_id, Preference.category == category_key
        )
    ).one_or_none()
    return is_subscribed(category, row, defaults)


def set_subscription(
    session: Session,
    recipient_id: int,
    category_key: str,
    subscribed: bool,
    origin: Origin,
    defaults: frozenset[str],
) -> bool:
    """Record the person's choice; returns True if it changed anything.

    Raises ``UnknownCategoryError`` for an unknown key and :class:`EssentialCategoryError` for an
    essential one (nothing is written then).
    """
    category = get_category(category_key)
    if category.essential:
        raise EssentialCategoryError(category_key)
    before = subscribed_to(session, recipient_id, category_key, defaults)
    values = {
        "recipient_id": recipient_id,
        "category": category_key,
        "subscribed": subscribed,
        "source": origin.source,
        "updated_at": utcnow(),
    }
    insert = insert_on_conflict(session, Preference).values(values)
    if before == subscribed:
        session.execute(insert.on_conflict_do_nothing(index_elements=["recipient_id", "category"]))
        return False
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["recipient_id", "category"],
            set_={key: values[key] for key in ("subscribed", "source", "updated_at")},
        )
    )
    action = "subscribed" if subscribed else "unsubscribed"
    consent.record(session, recipient_id, category_key, action, origin)
    return True


def choose(
    session: Session,
    recipient_id: int,
    category_key: str,
    subscribed: bool,
    origin: Origin,
    *,
    defaults: frozenset[str],
    hash_key: str,
) -> bool:
    """The person's own choice (API, pages): as :func:`set_subscription`, and a subscribe also
    lifts the suppression an earlier erasure left on their address, which is the fresh opt-in
    such an address needs before it gets optional mail again."""
    changed = set_subscription(session, recipient_id, category_key, subscribed, origin, defaults)
    if subscribed:
        address = session.scalar(select(Recipient.email).where(Recipient.id == recipient_id))
        if address:
            changed = suppressions.lift_erased(session, hash_key, address, origin) or changed
    return changed


@dataclass(frozen=True)
class Unsubscribed:
    """Whose link it was: the live recipient it names, their (decrypted) address and their
    locale (for the language of the answer)."""

    recipient_id: int
    email: str | None
    locale: str | None = None


def choose_language(session: Session, recipient_id: int, locale: str, origin: Origin) -> None:
    """The person chose the language of their emails and pages: store it as their locale and
    log it (action ``language:<tag>``, the earlier locale in ``detail``). The caller commits."""
    recipient = session.get(Recipient, recipient_id)
    if recipient is None or recipient.locale == locale:
        return
    earlier = recipient.locale
    recipient.locale = locale
    consent.record(
        session, recipient_id, suppressions.ALL_CATEGORIES, f"language:{locale}", origin, earlier
    )


def unsubscribe_link_holder(
    session: Session,
    public_id: str,
    category_key: str,
    origin: Origin,
    defaults: frozenset[str],
) -> Unsubscribed | None:
    """An unsubscribe link pressed (RFC 8058 one-click): find the live recipient by public id
    and record their opt-out of a non-essential category as :func:`set_subscription` would
    (a consent event only when it changes what they get). None when no live recipient has that
    id; nothing is written then.

    On PostgreSQL this is one statement (the lookup, the upsert and the consent event as
    data-modifying CTEs, and whether any callback endpoint is live); ``preference.changed``
    events take more statements only when one is. On SQLite it is :func:`set_subscription`
    after the lookup.
    """
    if get_category(category_key).essential:
        raise EssentialCategoryError(category_key)
    if not on_postgresql(session):
        row = session.execute(
            select(Recipient.id, Recipient.email, Recipient.locale).where(
                Recipient.public_id == public_id, Recipient.erased_at.is_(None)
            )
        ).one_or_none()
        if row is None:
            return None
        set_subscription(session, int(row[0]), category_key, False, origin, defaults)
        return Unsubscribed(int(row[0]), row[1], row[2])
    row = session.execute(
        _one_click_statement(),
        {
            "public_id": public_id,
            "category": category_key,
            "source": origin.source,
            "actor": origin.actor,
            "campaign_id": origin.campaign_id,
            "category_version": current_version(category_key),
            "now": utcnow(),
            # A new row changes what they get only if the category's default was on.
            "default_on": category_key in defaults,
        },
    ).one_or_none()
    if row is None:
        return None
    # The opt-out changed what they get (its consent event was written), and some endpoint may
    # want to hear it.
    if row._mapping["written"] and row._mapping["listened"]:
        callback_events.preference_changed(
            session, int(row[0]), category_key, "unsubscribed", origin.source
        )
    return Unsubscribed(int(row[0]), row[1], row[2])


@cache
def _one_click_statement() -> Any:
    """The PostgreSQL statement of :func:`unsubscribe_link_holder`, built once (building its
    CTEs costs more than running them); every value is a bound parameter."""
    now = bindparam("now", type_=Preference.updated_at.type)
    category, source = bindparam("category", type_=String()), bindparam("source", type_=String())
    person = (
        select(Recipient.id, Recipient.email, Recipient.locale)
        .where(Recipient.public_id == bindparam("public_id"), Recipient.erased_at.is_(None))
        .cte("person")
    )
    upsert = postgresql.insert(Preference).from_select(
        ["recipient_id", "category", "subscribed", "source", "updated_at"],
        select(person.c.id, category, false(), source, now),
    )
    changed = (
        upsert.on_conflict_do_update(
            index_elements=["recipient_id", "category"],
            set_={
                "subscribed": false(),
                "source": upsert.excluded.source,
                "updated_at": upsert.excluded.updated_at,
            },
            where=Preference.subscribed.is_(True),  # already off: nothing changes
        )
        .returning(Preference.recipient_id, literal_column("xmax = 0").label("inserted"))
        .cte("changed")
    )
    logged = (
        insert(ConsentEvent)
        .from_select(
            [
                "recipient_id",
                "category",
                "action",
                "source",
                "actor",
                "campaign_id",
                "category_version",
                "created_at",
            ],
            select(
                changed.c.recipient_id,
                category,
                literal("unsubscribed"),
                source,
                bindparam("actor", type_=String()),
                bindparam("campaign_id", type_=Integer()),
                bindparam("category_version", type_=String()),
                now,
            ).where(or_(changed.c.inserted.is_(False), bindparam("default_on", type_=Boolean()))),
        )
        .returning(ConsentEvent.id)
        .cte("logged")
    )
    written = select(func.count()).select_from(logged).scalar_subquery().label("written")
    return (
        select(
            person.c.id,
            person.c.email,
            person.c.locale,
            written,
            callback_events.any_live_endpoint().label("listened"),
        )
        .add_cte(changed)
        .add_cte(logged)
    )
