"""Eligibility: the Python rule and the SQL expression agree on every combination, on
PostgreSQL and on SQLite."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, literal, select
from sqlalchemy.orm import Session

from notify.categories import CATEGORIES
from notify.models import Pause, Preference, Recipient, Suppression, SuppressionReason
from notify.people.eligibility import Blocked, Facts, blocked_reason, may_receive, why_not

ESSENTIAL = next(key for key, category in CATEGORIES.items() if category.essential)
OPTIONAL = next(key for key, category in CATEGORIES.items() if not category.essential)
NOW = datetime(2026, 11, 28, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    category: str
    default_subscribed: bool
    stored_choice: bool | None
    suppression: SuppressionReason | None
    erased: bool
    has_address: bool
    pause: str  # "none", "active" (until after NOW) or "over" (ended before NOW)

    @property
    def facts(self) -> Facts:
        return Facts(
            essential=CATEGORIES[self.category].essential,
            default_subscribed=self.default_subscribed,
            erased=self.erased,
            has_address=self.has_address,
            suppression=self.suppression,
            stored_choice=self.stored_choice,
            paused=self.pause == "active",
        )


CASES = [
    Case(*values)
    for values in itertools.product(
        (ESSENTIAL, OPTIONAL),
        (True, False),
        (None, True, False),
        (None, *SuppressionReason),
        (False, True),
        (True, False),
        ("none", "active", "over"),
    )
]


def test_the_table_covers_every_reason_and_both_answers() -> None:
    answers = {why_not(case.facts) for case in CASES}
    assert answers == {None, *Blocked}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (Facts(True, False, False, True, SuppressionReason.COMPLAINT, False), None),
        (Facts(True, False, False, True, SuppressionReason.HARD_BOUNCE, None), Blocked.BOUNCED),
        (Facts(False, True, False, True, None, None), None),
        (Facts(False, True, False, True, None, False), Blocked.UNSUBSCRIBED),
        (Facts(False, False, False, True, None, True), None),
        (Facts(False, True, False, True, SuppressionReason.ERASED, True), Blocked.SUPPRESSED),
        (Facts(True, True, True, False, None, None), Blocked.ERASED),
        (Facts(True, True, False, False, None, None), Blocked.NO_ADDRESS),
        (Facts(False, True, False, True, None, None, paused=True), Blocked.PAUSED),
        (Facts(False, True, False, True, None, False, paused=True), Blocked.UNSUBSCRIBED),
        (Facts(True, True, False, True, None, None, paused=True), None),
    ],
)
def test_the_rule_by_hand(facts: Facts, expected: Blocked | None) -> None:
    """A few rows written out, so the rule is not only checked against itself."""
    assert why_not(facts) == expected


def _store(session: Session) -> dict[str, Case]:
    """One recipient per case (its stored choice and suppression as the case says)."""
    by_user: dict[str, Case] = {}
    for number, case in enumerate(CASES):
        user_id = f"eligibility-{number}"
        address_hash = f"hash-{number}" if case.has_address else None
        recipient_id = session.execute(
            insert(Recipient)
            .values(
                public_id=f"p{number}",
                user_id=user_id,
                email=f"person{number}@example.com" if case.has_address else None,
                email_hash=address_hash,
                created_at=NOW,
                updated_at=NOW,
                erased_at=NOW if case.erased else None,
            )
            .returning(Recipient.id)
        ).scalar_one()
        if case.stored_choice is not None:
            session.add(
                Preference(
                    recipient_id=recipient_id,
                    category=case.category,
                    subscribed=case.stored_choice,
                    source="api",
                    updated_at=NOW,
                )
            )
        if case.pause != "none":
            until = NOW + timedelta(days=1 if case.pause == "active" else -1)
            session.add(Pause(recipient_id=recipient_id, category=case.category, until=until))
        if case.suppression is not None and address_hash is not None:
            session.add(Suppression(address_hash=address_hash, reason=case.suppression))
        by_user[user_id] = case
    session.flush()
    return by_user


def test_sql_and_python_agree_on_every_combination(session: Session) -> None:
    by_user = _store(session)
    checked = 0
    for category, default_subscribed in itertools.product((ESSENTIAL, OPTIONAL), (True, False)):
        defaults = frozenset({category}) if default_subscribed else frozenset()
        # The category as a Python key and as a SQL value (how a column would pass it).
        for spelled in (category, literal(category)):
            rows = session.execute(
                select(
                    Recipient.user_id,
                    blocked_reason(spelled, defaults, NOW),
                    may_receive(spelled, defaults, NOW),
                ).where(Recipient.user_id.like("eligibility-%"))
            ).all()
            for user_id, reason, may in rows:
                case = by_user[user_id]
                if (case.category, case.default_subscribed) != (category, default_subscribed):
                    continue
                expected = why_not(case.facts)
                assert reason == (None if expected is None else expected.value), case
                assert bool(may) is (expected is None), case
                checked += 1
    assert checked == 2 * len(CASES)
