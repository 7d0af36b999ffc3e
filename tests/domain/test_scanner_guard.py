"""The scanner guard on PostgreSQL and SQLite: a burst of early presses from one network or
domain is flagged and held; a trickle, or presses long after delivery, are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from notify.models import ConsentEvent, Notification, NotificationStatus
from notify.people import scanner_guard
from notify.people.consent import HELD, SUSPECTED
from notify.people.scanner_guard import Limits, Source, network_of
from tests.domain.people import HASH_KEY, accepted

CATEGORY = "product_updates"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LIMITS = Limits(burst_seconds=60, per_network=5, per_domain=8, early_seconds=300, hold_minutes=60)


def _sent_update(session: Session, user_id: str, sent_at: datetime) -> int:
    """A person who got a product update at ``sent_at``; their recipient id."""
    notification_id, recipient_id = accepted(session, "product_update", user_id)
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(status=NotificationStatus.SENT, sent_at=sent_at)
    )
    return recipient_id


def _events(session: Session, action: str, people: list[int]) -> list[int]:
    """Who among ``people`` has an ``action`` event (the database may hold other tests')."""
    return list(
        session.scalars(
            select(ConsentEvent.recipient_id).where(
                ConsentEvent.action == action, ConsentEvent.recipient_id.in_(people)
            )
        )
    )


def _press(session: Session, person: int, source: Source, at: datetime) -> list[str]:
    early = scanner_guard.is_early(session, person, CATEGORY, at, LIMITS)
    return scanner_guard.record_press(
        session, person, CATEGORY, source, early=early, honoured=True, now=at, limits=LIMITS
    )


def test_networks_are_cut_to_their_prefix_and_nothing_else_is_kept() -> None:
    assert network_of("203.0.113.77") == "203.0.113.0/24"
    assert network_of("::ffff:203.0.113.77") == "203.0.113.0/24"
    assert network_of("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert network_of("testclient") == network_of(None) == "unknown"
    unknown = scanner_guard.source_of(HASH_KEY, "testclient", None)
    assert unknown == Source(network_key="", domain_key="")  # counted for neither
    source = scanner_guard.source_of(HASH_KEY, "203.0.113.77", "ada@example.com")
    assert "203.0.113" not in source.network_key and "example.com" not in source.domain_key
    assert source == scanner_guard.source_of(HASH_KEY, "203.0.113.9", "bob@EXAMPLE.com")


def test_a_burst_from_one_network_is_flagged_and_the_network_held(session: Session) -> None:
    source = scanner_guard.source_of(HASH_KEY, "198.51.100.20", "x@burst.example")
    people = [_sent_update(session, f"burst-{n}", NOW - timedelta(seconds=20)) for n in range(6)]
    found = [_press(session, person, source, NOW + timedelta(seconds=n)) for n, person in
             enumerate(people[:5])]  # fmt: skip
    assert found == [[], [], [], [], ["network"]]
    assert sorted(_events(session, SUSPECTED, people)) == sorted(people[:5])
    later = NOW + timedelta(minutes=30)
    assert scanner_guard.held(session, source, later) == "network"
    assert scanner_guard.held(session, source, NOW + timedelta(minutes=61)) is None
    other = scanner_guard.source_of(HASH_KEY, "192.0.2.1", "x@elsewhere.example")
    assert scanner_guard.held(session, other, later) is None
    scanner_guard.log_held(session, people[5], CATEGORY, "network")
    assert _events(session, HELD, people) == [people[5]]


def test_a_trickle_of_presses_is_never_flagged(session: Session) -> None:
    source = scanner_guard.source_of(HASH_KEY, "198.51.100.40", "x@trickle.example")
    people = []
    for n in range(10):  # one every two minutes, each right after that person's message
        at = NOW + timedelta(minutes=2 * n)
        people.append(_sent_update(session, f"trickle-{n}", at - timedelta(seconds=10)))
        assert _press(session, people[-1], source, at) == []
    assert _events(session, SUSPECTED, people) == []
    assert scanner_guard.held(session, source, NOW + timedelta(minutes=21)) is None


def test_presses_long_after_delivery_do_not_count(session: Session) -> None:
    source = scanner_guard.source_of(HASH_KEY, "198.51.100.60", "x@late.example")
    for n in range(6):  # a burst, but of people whose message came an hour earlier
        person = _sent_update(session, f"late-{n}", NOW - timedelta(hours=1))
        assert _press(session, person, source, NOW + timedelta(seconds=n)) == []
    assert scanner_guard.held(session, source, NOW + timedelta(seconds=10)) is None


def test_one_domain_across_networks_makes_a_burst_at_its_own_threshold(session: Session) -> None:
    found = []
    for n in range(LIMITS.per_domain):
        person = _sent_update(session, f"domain-{n}", NOW)
        source = scanner_guard.source_of(HASH_KEY, f"10.{n}.0.1", "x@one-company.example")
        found.append(_press(session, person, source, NOW + timedelta(seconds=n)))
    assert found[-1] == ["domain"] and all(kinds == [] for kinds in found[:-1])
    any_network = scanner_guard.source_of(HASH_KEY, "172.16.0.1", "y@one-company.example")
    assert scanner_guard.held(session, any_network, NOW + timedelta(minutes=1)) == "domain"


def test_presses_from_an_unknown_network_never_make_a_network_burst(session: Session) -> None:
    for n in range(LIMITS.per_network + 1):
        person = _sent_update(session, f"unknown-net-{n}", NOW)
        source = scanner_guard.source_of(HASH_KEY, None, f"x{n}@domain-{n}.example")
        assert _press(session, person, source, NOW + timedelta(seconds=n)) == []
