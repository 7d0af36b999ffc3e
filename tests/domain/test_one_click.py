"""An unsubscribe link pressed: one statement on PostgreSQL, the same outcome on both engines
as a choice recorded through set_subscription."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notify.models import (
    CallbackEndpoint,
    CallbackEvent,
    ConsentEvent,
    ConsentSource,
    Preference,
    Recipient,
)
from notify.models.base import utcnow
from notify.people import preferences, recipients
from notify.people.consent import Origin
from notify.people.preferences import EssentialCategoryError
from notify.producers.callbacks.events import EventType
from tests.domain.people import endpoint
from tests.support.services import statements_run

HASH_KEY = "domain-test-hash-key"
CATEGORY = "product_updates"
ONE_CLICK = Origin(ConsentSource.ONE_CLICK)


def _person(session: Session, user_id: str) -> tuple[int, str]:
    recipient_id = recipients.upsert_for_send(
        session, user_id, email=f"{user_id}@example.com", hash_key=HASH_KEY
    )
    assert recipient_id is not None
    public_id = session.scalar(select(Recipient.public_id).where(Recipient.id == recipient_id))
    assert public_id is not None
    return recipient_id, public_id


def _state(session: Session, recipient_id: int) -> tuple[bool | None, list[tuple[str, str]]]:
    stored = session.scalar(
        select(Preference.subscribed).where(
            Preference.recipient_id == recipient_id, Preference.category == CATEGORY
        )
    )
    events = session.execute(
        select(ConsentEvent.action, ConsentEvent.source)
        .where(ConsentEvent.recipient_id == recipient_id)
        .order_by(ConsentEvent.id)
    ).all()
    return stored, [(str(action), str(source)) for action, source in events]


def test_a_press_records_the_opt_out_once_and_a_repeat_changes_nothing(session: Session) -> None:
    recipient_id, public_id = _person(session, "one-click-once")
    defaults = frozenset({CATEGORY})
    found = preferences.unsubscribe_link_holder(session, public_id, CATEGORY, ONE_CLICK, defaults)
    assert found == preferences.Unsubscribed(recipient_id, "one-click-once@example.com")
    assert _state(session, recipient_id) == (False, [("unsubscribed", "one_click")])
    again = preferences.unsubscribe_link_holder(session, public_id, CATEGORY, ONE_CLICK, defaults)
    assert again == found
    assert _state(session, recipient_id) == (False, [("unsubscribed", "one_click")])


def test_a_category_off_by_default_is_stored_off_without_a_consent_event(session: Session) -> None:
    recipient_id, public_id = _person(session, "one-click-default-off")
    preferences.unsubscribe_link_holder(session, public_id, CATEGORY, ONE_CLICK, frozenset())
    assert _state(session, recipient_id) == (False, [])


def test_a_stored_subscription_is_turned_off_and_logged(session: Session) -> None:
    recipient_id, public_id = _person(session, "one-click-stored-on")
    preferences.set_subscription(
        session, recipient_id, CATEGORY, True, Origin(ConsentSource.API), frozenset()
    )
    preferences.unsubscribe_link_holder(session, public_id, CATEGORY, ONE_CLICK, frozenset())
    assert _state(session, recipient_id) == (
        False,
        [("subscribed", "api"), ("unsubscribed", "one_click")],
    )


def test_an_unknown_or_erased_person_changes_nothing(session: Session) -> None:
    before = session.scalar(select(func.count()).select_from(ConsentEvent))
    assert (
        preferences.unsubscribe_link_holder(
            session, "no-such-public-id", CATEGORY, ONE_CLICK, frozenset({CATEGORY})
        )
        is None
    )
    recipient_id, public_id = _person(session, "one-click-erased")
    session.execute(
        Recipient.__table__.update()
        .where(Recipient.__table__.c.id == recipient_id)
        .values(erased_at=func.now())
    )
    assert (
        preferences.unsubscribe_link_holder(
            session, public_id, CATEGORY, ONE_CLICK, frozenset({CATEGORY})
        )
        is None
    )
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == before
    assert _state(session, recipient_id) == (None, [])


def test_an_essential_category_is_refused(session: Session) -> None:
    _, public_id = _person(session, "one-click-essential")
    with pytest.raises(EssentialCategoryError):
        preferences.unsubscribe_link_holder(session, public_id, "security", ONE_CLICK, frozenset())


def test_a_press_is_reported_to_live_endpoints_and_to_no_other(session: Session) -> None:
    """The statement says whether any endpoint is live: a disabled one hears nothing, a live
    one that asked for preference changes hears the press once."""
    recipient_id, public_id = _person(session, "one-click-reported")
    defaults = frozenset({CATEGORY})

    def reported() -> list[tuple[int, str]]:
        return [
            (event.endpoint_id, event.payload["change"])
            for event in session.scalars(select(CallbackEvent))
            if event.payload.get("recipient") == recipient_id
        ]

    _, disabled = endpoint(session, EventType.PREFERENCE_CHANGED)
    session.get_one(CallbackEndpoint, disabled).disabled_at = utcnow()
    session.flush()
    preferences.unsubscribe_link_holder(session, public_id, CATEGORY, ONE_CLICK, defaults)
    assert reported() == []  # the opt-out was recorded, and no endpoint was live
    preferences.set_subscription(
        session, recipient_id, CATEGORY, True, Origin(ConsentSource.API), frozenset()
    )
    assert reported() == []
    _, listening = endpoint(session, EventType.PREFERENCE_CHANGED)
    endpoint(session, EventType.SENT)  # live, but wants other events
    preferences.unsubscribe_link_holder(session, public_id, CATEGORY, ONE_CLICK, defaults)
    preferences.unsubscribe_link_holder(session, public_id, CATEGORY, ONE_CLICK, defaults)
    assert reported() == [(listening, "unsubscribed")]


def test_on_postgresql_a_press_with_no_live_endpoint_is_one_statement(own_postgres: Any) -> None:
    """The endpoints are read again only when the statement found one live."""
    with own_postgres.begin() as session:
        _, public_id = _person(session, "one-click-alone")
        _, disabled = endpoint(session, EventType.PREFERENCE_CHANGED)
        session.get_one(CallbackEndpoint, disabled).disabled_at = utcnow()
    with statements_run(own_postgres.kw["bind"]) as statements, own_postgres.begin() as session:
        preferences.unsubscribe_link_holder(
            session, public_id, CATEGORY, ONE_CLICK, frozenset({CATEGORY})
        )
    assert len(statements) == 1
