"""Soft bounces are counted per address; three days of them within the window suppress it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.models import ConsentSource, SoftBounce, SuppressionReason
from notify.people import soft_bounces, suppressions
from notify.people.consent import Origin

SETTINGS = Settings()  # 3 days within 14
ORIGIN = Origin(ConsentSource.BOUNCE, actor="test")
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def bounce(session: Session, address: str, at: datetime) -> bool:
    return soft_bounces.record(session, SETTINGS, address, ORIGIN, now=at)


def suppressed(session: Session, address: str) -> SuppressionReason | None:
    entry = suppressions.lookup(session, SETTINGS.hash_key, address)
    return None if entry is None else entry.reason


def test_soft_bounces_on_three_days_suppress_and_many_on_one_day_do_not(session: Session) -> None:
    address = "full-mailbox@example.com"
    for hour in range(10):  # ten on one day: one day
        assert not bounce(session, address, START + timedelta(hours=hour))
    assert not bounce(session, address, START + timedelta(days=5))
    assert suppressed(session, address) is None
    assert bounce(session, address, START + timedelta(days=9))
    assert suppressed(session, address) == SuppressionReason.HARD_BOUNCE
    assert session.scalars(select(SoftBounce)).all() == []  # its count ends with it
    assert not soft_bounces.counts("5.1.1") and not soft_bounces.counts("5.7.1")
    assert (
        soft_bounces.counts("4.2.2") and soft_bounces.counts("5.2.2") and soft_bounces.counts(None)
    )


def test_a_soft_bounce_after_the_window_starts_counting_again(session: Session) -> None:
    address = "sometimes@example.com"
    assert not bounce(session, address, START)
    assert not bounce(session, address, START + timedelta(days=10))
    assert not bounce(session, address, START + timedelta(days=20))  # past 14: a new window
    assert not bounce(session, address, START + timedelta(days=21))
    assert suppressed(session, address) is None
    assert bounce(session, address, START + timedelta(days=22))


@pytest.mark.parametrize("address", ["Mixed.Case@Example.com"])
def test_the_count_is_kept_by_the_addresss_keyed_hash_only(session: Session, address: str) -> None:
    bounce(session, address, START)
    row = session.scalars(select(SoftBounce)).one()
    assert row.address_hash == suppressions.address_hash(SETTINGS.hash_key, address)
    assert "example" not in row.address_hash.lower()
