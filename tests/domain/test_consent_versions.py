"""Consent versions on PostgreSQL and SQLite: every consent event records the version of the
category's wording current when it was made, and the stats count people by the version they
last agreed to."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.categories import CATEGORIES
from notify.models import ConsentEvent, ConsentSource, Recipient, SuppressionReason
from notify.people import consent, preferences, suppressions
from notify.people.consent import Origin
from notify.privacy import rights
from notify.privacy.stats import consent_versions
from tests.domain import people
from tests.domain.people import HASH_KEY

CATEGORY = "product_updates"
DEFAULTS = frozenset({CATEGORY})


def _choose(session: Session, recipient_id: int, subscribed: bool) -> None:
    origin = Origin(ConsentSource.API)
    assert preferences.set_subscription(
        session, recipient_id, CATEGORY, subscribed, origin, DEFAULTS
    )
    session.flush()


def _agreeing(session: Session) -> dict[str, int]:
    return {
        row["version"]: row["people"]
        for row in consent_versions(session)
        if row["category"] == CATEGORY
    }


def _new_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 2 of the category's wording, version 1 kept as the earlier one."""
    first = CATEGORIES[CATEGORY]
    second = dataclasses.replace(
        first,
        version="2",
        description="News about the product and offers from partners.",
        earlier=((first.version, first.description),),
    )
    monkeypatch.setitem(CATEGORIES, CATEGORY, second)


def test_each_route_records_the_version_shown_now_and_the_rest_none(session: Session) -> None:
    recipient_id = people.person(session, "versions-routes")
    public_id = session.scalar(select(Recipient.public_id).where(Recipient.id == recipient_id))
    assert public_id is not None
    _choose(session, recipient_id, False)
    _choose(session, recipient_id, True)
    preferences.unsubscribe_link_holder(
        session, public_id, CATEGORY, Origin(ConsentSource.ONE_CLICK), DEFAULTS
    )
    preferences.choose_language(session, recipient_id, "de", Origin(ConsentSource.PAGE))
    suppressions.suppress(
        session,
        HASH_KEY,
        "versions-routes@example.com",
        SuppressionReason.COMPLAINT,
        Origin(ConsentSource.COMPLAINT),
    )
    session.flush()
    events = session.execute(
        select(ConsentEvent.action, ConsentEvent.category_version)
        .where(ConsentEvent.recipient_id == recipient_id)
        .order_by(ConsentEvent.id)
    ).all()
    assert [tuple(event) for event in events] == [
        ("unsubscribed", "1"),
        ("subscribed", "1"),
        ("unsubscribed", "1"),  # the one-click statement (one CTE on PostgreSQL)
        ("language:de", None),
        ("suppressed:complaint", None),
    ]


def test_people_are_counted_by_the_version_they_last_agreed_to(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _agreeing(session)
    stays, leaves, erased, renews = (
        people.person(session, f"versions-{name}")
        for name in ("stays", "leaves", "erased", "renews")
    )
    for person in (stays, leaves, erased, renews):
        _choose(session, person, False)
        _choose(session, person, True)  # agrees under version 1
    _choose(session, leaves, False)
    recipient = session.get(Recipient, erased)
    assert recipient is not None
    rights.erase(session, recipient, hash_key=HASH_KEY, actor="test")
    session.flush()
    _new_wording(monkeypatch)
    _choose(session, renews, False)
    _choose(session, renews, True)  # agrees again, under version 2
    after = _agreeing(session)
    assert after.get("1", 0) - before.get("1", 0) == 1  # stays
    assert after.get("2", 0) - before.get("2", 0) == 1  # renews


def test_the_export_and_the_log_show_the_version_and_the_wording_seen(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = people.person(session, "versions-export")
    _choose(session, person, False)
    _new_wording(monkeypatch)
    _choose(session, person, True)
    recipient = session.get(Recipient, person)
    assert recipient is not None
    exported = rights.export(session, recipient, hash_key=HASH_KEY, defaults=DEFAULTS)
    history = exported["consent_history"]  # newest first
    assert [(e["action"], e["category_version"]) for e in history] == [
        ("subscribed", "2"),
        ("unsubscribed", "1"),
    ]
    assert history[0]["category_wording"] == "News about the product and offers from partners."
    assert history[1]["category_wording"] == CATEGORIES[CATEGORY].earlier[0][1]
    latest = consent.history(session, person)[0]
    assert consent.wording_seen(latest)["category_version"] == "2"
