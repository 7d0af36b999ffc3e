"""May this person get a message of this category now? The one place that decides.

The rule, in order (the first that applies is the answer):

1. an erased person gets nothing (``erased``);
2. a person without an address gets nothing (``no_address``);
3. a hard bounce stops all mail to the address (``bounced``);
4. essential mail (security, admin) goes out;
5. any other suppression stops optional mail (``complained``, ``suppressed``);
6. optional mail goes out if the person's stored choice, or the category's default where they
   never chose, is "subscribed"; otherwise not (``unsubscribed``);
7. unless the person paused the category until a time after now (``paused``): a pause ends by
   itself, and mail it held back is not sent later.

Quiet hours are not part of the rule: they delay optional mail that may go out
(:mod:`notify.people.quiet_hours`), they never stop it.

It is written twice, once for each place it runs, and nowhere else: :func:`why_not` decides
on facts already read (a claimed row), :func:`blocked_reason` is the same rule as a SQL
expression for statements that select, claim or plan on the database (PostgreSQL and SQLite).
``tests/domain/test_eligibility.py`` runs every combination through both and requires them
to agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, case, exists, false, func, literal, null, select, true
from sqlalchemy.orm import QueryableAttribute

from notify.categories import CATEGORIES, get_category
from notify.models import Pause, Preference, Recipient, Suppression, SuppressionReason

CategoryKey = str | ColumnElement[str] | QueryableAttribute[str]
"""A category key: a Python string, or a SQL expression (a column) that holds one."""


class Blocked(StrEnum):
    """Why a message did not go out; stored as the notification's ``reason``."""

    ERASED = "erased"
    NO_ADDRESS = "no_address"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SUPPRESSED = "suppressed"
    UNSUBSCRIBED = "unsubscribed"
    PAUSED = "paused"


# What each suppression-list entry means for a send that it stops.
BLOCKED_BY_SUPPRESSION: dict[SuppressionReason, Blocked] = {
    SuppressionReason.HARD_BOUNCE: Blocked.BOUNCED,
    SuppressionReason.COMPLAINT: Blocked.COMPLAINED,
    SuppressionReason.OPERATOR: Blocked.SUPPRESSED,
    SuppressionReason.ERASED: Blocked.SUPPRESSED,
}


@dataclass(frozen=True)
class Facts:
    """What the rule needs to know about one person and one category."""

    essential: bool
    default_subscribed: bool
    erased: bool
    has_address: bool
    suppression: SuppressionReason | None
    stored_choice: bool | None  # None: the person never chose
    paused: bool = False  # the person paused the category until a time after now


def facts_for(
    category_key: str,
    defaults: frozenset[str],
    *,
    erased: bool,
    has_address: bool,
    suppression: str | None,
    stored_choice: bool | None,
    paused: bool = False,
) -> Facts:
    """:class:`Facts` for a category by key, with its default from ``defaults``."""
    category = get_category(category_key)
    return Facts(
        essential=category.essential,
        default_subscribed=category_key in defaults,
        erased=erased,
        has_address=has_address,
        suppression=None if suppression is None else SuppressionReason(suppression),
        stored_choice=stored_choice,
        paused=paused,
    )


class Rule(StrEnum):
    """The step of the rule that decided (the numbers in this module's docstring)."""

    ERASED = "erased"  # 1
    NO_ADDRESS = "no_address"  # 2
    HARD_BOUNCE = "hard_bounce"  # 3
    ESSENTIAL = "essential"  # 4
    SUPPRESSION = "suppression"  # 5
    STORED_CHOICE = "stored_choice"  # 6, the person chose
    CATEGORY_DEFAULT = "category_default"  # 6, they never chose
    PAUSED = "paused"  # 7


def deciding_rule(facts: Facts) -> Rule:
    """Which step of the rule decides for ``facts`` (what an explanation names)."""
    if facts.erased:
        return Rule.ERASED
    if not facts.has_address:
        return Rule.NO_ADDRESS
    if facts.suppression is SuppressionReason.HARD_BOUNCE:
        return Rule.HARD_BOUNCE
    if facts.essential:
        return Rule.ESSENTIAL
    if facts.suppression is not None:
        return Rule.SUPPRESSION
    if facts.paused and wants(facts.essential, facts.default_subscribed, facts.stored_choice):
        return Rule.PAUSED
    return Rule.CATEGORY_DEFAULT if facts.stored_choice is None else Rule.STORED_CHOICE


_BLOCKED_BY_RULE = {
    Rule.ERASED: Blocked.ERASED,
    Rule.NO_ADDRESS: Blocked.NO_ADDRESS,
    Rule.HARD_BOUNCE: Blocked.BOUNCED,
}


def why_not(facts: Facts) -> Blocked | None:
    """Why the message must not go out now, or None if it may."""
    rule = deciding_rule(facts)
    if rule in _BLOCKED_BY_RULE:
        return _BLOCKED_BY_RULE[rule]
    if rule is Rule.ESSENTIAL:
        return None
    if rule is Rule.SUPPRESSION and facts.suppression is not None:
        return BLOCKED_BY_SUPPRESSION[facts.suppression]
    if rule is Rule.PAUSED:
        return Blocked.PAUSED
    if wants(facts.essential, facts.default_subscribed, facts.stored_choice):
        return None
    return Blocked.UNSUBSCRIBED


def wants(essential: bool, default_subscribed: bool, stored_choice: bool | None) -> bool:
    """Whether the person wants the category: essential ones always; otherwise their stored
    choice, or the category's default where they never chose. (The preference API shows
    this; :func:`why_not` adds the address, erasure and the suppression list.)"""
    if essential:
        return True
    return default_subscribed if stored_choice is None else stored_choice


def stored_choice(category: CategoryKey) -> Any:
    """The person's stored choice for ``category`` (NULL when they never chose), correlated
    to :class:`Recipient` in the enclosing statement."""
    return (
        select(Preference.subscribed)
        .where(Preference.recipient_id == Recipient.id, Preference.category == category)
        .scalar_subquery()
    )


def suppression_of_address() -> Any:
    """The suppression-list reason for the recipient's current address, or NULL."""
    return (
        select(Suppression.reason)
        .where(Suppression.address_hash == Recipient.email_hash)
        .scalar_subquery()
    )


def _membership(category: CategoryKey, keys: frozenset[str]) -> ColumnElement[bool]:
    if isinstance(category, str):
        return true() if category in keys else false()
    return category.in_(sorted(keys)) if keys else false()


def paused_at(category: CategoryKey, now: datetime) -> ColumnElement[bool]:
    """Whether the person, correlated to :class:`Recipient`, paused ``category`` past ``now``."""
    return exists().where(
        Pause.recipient_id == Recipient.id, Pause.category == category, Pause.until > now
    )


def blocked_reason(
    category: CategoryKey, defaults: frozenset[str], now: datetime
) -> ColumnElement[str | None]:
    """:func:`why_not` as a SQL expression over :class:`Recipient` (a ``CASE`` that is NULL when
    the message may go) at the time ``now`` (for pauses). ``category`` is a key, or a column
    holding one.

    The suppression-list lookup is the operand of a simple ``CASE``, so it is evaluated once a
    row, and the person's stored choice only when no suppression decided.
    """
    essential = _membership(category, frozenset(k for k, c in CATEGORIES.items() if c.essential))

    def unless_essential(blocked: Blocked) -> ColumnElement[str | None]:
        return case((essential, null()), else_=literal(blocked.value))

    by_suppression = {
        reason.value: (
            literal(blocked.value)
            if reason is SuppressionReason.HARD_BOUNCE  # stops all mail
            else unless_essential(blocked)
        )
        for reason, blocked in BLOCKED_BY_SUPPRESSION.items()
    }
    by_choice = case(
        (essential, null()),
        (~_coalesce_choice(category, defaults), literal(Blocked.UNSUBSCRIBED.value)),
        (paused_at(category, now), literal(Blocked.PAUSED.value)),
        else_=null(),
    )
    return case(
        (Recipient.erased_at.is_not(None), literal(Blocked.ERASED.value)),
        (Recipient.email.is_(None), literal(Blocked.NO_ADDRESS.value)),
        else_=case(by_suppression, value=suppression_of_address(), else_=by_choice),
    )


def _coalesce_choice(category: CategoryKey, defaults: frozenset[str]) -> ColumnElement[bool]:
    return func.coalesce(stored_choice(category), _membership(category, defaults))


def may_receive(
    category: CategoryKey, defaults: frozenset[str], now: datetime
) -> ColumnElement[bool]:
    """The rule as a WHERE clause: true for people who may get ``category`` at ``now``."""
    return blocked_reason(category, defaults, now).is_(None)
