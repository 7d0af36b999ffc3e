"""Pauses and quiet hours on PostgreSQL and SQLite: each change a consent event, a pause that
stops optional mail and ends by itself, and explanations that show both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.models import ConsentEvent, ConsentSource, Pause, Recipient
from notify.people import decisions, pauses
from notify.people.consent import Origin
from notify.people.pauses import PauseLengthError
from notify.people.preferences import EssentialCategoryError
from notify.people.quiet_hours import parse
from notify.privacy import rights
from tests.domain import people
from tests.domain.people import HASH_KEY

CATEGORY = "product_updates"
DEFAULTS = frozenset({CATEGORY})
NOW = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
ORIGIN = Origin(ConsentSource.PREFERENCE_CENTRE)


def _actions(session: Session, recipient_id: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(ConsentEvent.category, ConsentEvent.action)
        .where(ConsentEvent.recipient_id == recipient_id)
        .order_by(ConsentEvent.id)
    ).all()
    return [(str(category), str(action)) for category, action in rows]


def test_a_pause_stops_optional_mail_until_it_ends_and_then_it_flows_again(
    session: Session,
) -> None:
    person = people.person(session, "pause-ends")
    until = pauses.pause(session, person, CATEGORY, 30, ORIGIN, now=NOW)
    session.flush()
    assert until == NOW + timedelta(days=30)
    during = decisions.explain_now(session, person, CATEGORY, DEFAULTS, now=NOW, default_zone="UTC")
    assert during is not None
    assert (during["sends"], during["blocked"], during["rule"]) == (False, "paused", "paused")
    assert during["pause"] == {"until": until.isoformat()}
    alert = decisions.explain_now(
        session, person, "security", DEFAULTS, now=NOW, default_zone="UTC"
    )
    assert alert is not None and alert["sends"] is True  # essential mail is never paused
    after = decisions.explain_now(
        session, person, CATEGORY, DEFAULTS, now=until, default_zone="UTC"
    )
    assert after is not None and after["sends"] is True  # ended by itself, nothing to do
    assert pauses.paused_until(session, person, NOW) == {CATEGORY: until}
    assert pauses.paused_until(session, person, until) == {}


def test_a_new_pause_replaces_the_running_one_and_resume_ends_it(session: Session) -> None:
    person = people.person(session, "pause-replace")
    pauses.pause(session, person, CATEGORY, 30, ORIGIN, now=NOW)
    longer = pauses.pause(session, person, CATEGORY, 90, ORIGIN, now=NOW)
    assert pauses.paused_until(session, person, NOW) == {CATEGORY: longer}
    assert pauses.resume(session, person, CATEGORY, ORIGIN, now=NOW)
    assert not pauses.resume(session, person, CATEGORY, ORIGIN, now=NOW)  # nothing to end
    assert pauses.paused_until(session, person, NOW) == {}
    assert _actions(session, person) == [
        (CATEGORY, "paused"),
        (CATEGORY, "paused"),
        (CATEGORY, "resumed"),
    ]


def test_only_the_offered_lengths_and_optional_categories_can_be_paused(session: Session) -> None:
    person = people.person(session, "pause-refused")
    with pytest.raises(PauseLengthError):
        pauses.pause(session, person, CATEGORY, 45, ORIGIN, now=NOW)
    with pytest.raises(EssentialCategoryError):
        pauses.pause(session, person, "security", 30, ORIGIN, now=NOW)
    assert session.scalars(select(Pause).where(Pause.recipient_id == person)).all() == []
    assert _actions(session, person) == []


def test_quiet_hours_delay_optional_mail_and_each_change_is_logged(session: Session) -> None:
    person = people.person(session, "quiet-hours")
    assert pauses.set_quiet_hours(session, person, parse("22:00", "07:00"), ORIGIN)
    assert not pauses.set_quiet_hours(session, person, parse("22:00", "07:00"), ORIGIN)
    session.flush()
    held = decisions.explain_now(session, person, CATEGORY, DEFAULTS, now=NOW, default_zone="UTC")
    assert held is not None
    assert (held["sends"], held["blocked"]) == (False, None)
    assert held["delayed_until"] == datetime(2026, 11, 29, 7, 0, tzinfo=UTC).isoformat()
    assert held["quiet_hours"] == {"window": "22:00-07:00", "time_zone": "UTC"}
    alert = decisions.explain_now(
        session, person, "security", DEFAULTS, now=NOW, default_zone="UTC"
    )
    assert alert is not None and alert["sends"] is True and alert["delayed_until"] is None
    # Without a zone of their own, the person's window is in NOTIFY_DEFAULT_TIMEZONE: 23:00 UTC
    # is 18:00 in New York, outside 22:00-07:00 there.
    elsewhere = decisions.explain_now(
        session, person, CATEGORY, DEFAULTS, now=NOW, default_zone="America/New_York"
    )
    assert elsewhere is not None and elsewhere["sends"] is True
    assert elsewhere["quiet_hours"]["time_zone"] == "America/New_York"
    assert pauses.set_quiet_hours(session, person, None, ORIGIN)
    assert _actions(session, person) == [("*", "quiet_hours:22:00-07:00"), ("*", "quiet_hours:off")]


def test_erasure_forgets_pauses_and_quiet_hours_and_the_export_shows_them(
    session: Session,
) -> None:
    person = people.person(session, "pause-erased")
    until = pauses.pause(session, person, CATEGORY, 90, ORIGIN, now=NOW)
    pauses.set_quiet_hours(session, person, parse("21:30", "06:00"), ORIGIN)
    session.flush()
    recipient = session.get_one(Recipient, person)
    exported = rights.export(session, recipient, hash_key=HASH_KEY, defaults=DEFAULTS)
    assert exported["pauses"] == {CATEGORY: until.isoformat()}
    assert exported["profile"]["quiet_hours"] == {"start": "21:30", "end": "06:00"}
    rights.erase(session, recipient, hash_key=HASH_KEY, actor="test")
    session.flush()
    assert session.scalars(select(Pause).where(Pause.recipient_id == person)).all() == []
    assert (recipient.quiet_hours_start, recipient.quiet_hours_end) == (None, None)
