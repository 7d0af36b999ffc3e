"""Who a campaign reaches, a page at a time, and when each of them is due.

Pages go by recipient id (keyset, never OFFSET), so memory stays one page whatever the audience.
Each page becomes one batch: one notification row per person, unique per (campaign, recipient),
inserted with ON CONFLICT DO NOTHING so planning the same page twice adds nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from notify.crypto import UndecryptableError
from notify.models import (
    Campaign,
    Recipient,
)
from notify.models.base import opened, stored, utcnow
from notify.people import eligibility, recipients

log = logging.getLogger(__name__)


def attribute_text(value: Any) -> str:
    """An attribute's value as an audience compares it: ``true``/``false``, numbers as JSON
    writes them, text as it is."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class AudienceFilter:
    """``audience`` of a campaign: everyone subscribed, optionally narrowed by locale, by user
    id, and by attributes (each ``key: value`` must match, compared as text).

    Attributes are encrypted, so the database cannot compare them: :func:`subscribed_audience`
    is then a superset, and :meth:`admits` decides each person after decryption. Everything
    that counts or plans an audience goes through :func:`members` or :meth:`admits`."""

    locales: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> AudienceFilter:
        locales = raw.get("locales") or ()
        user_ids = raw.get("user_ids") or ()
        attributes = raw.get("attributes") or {}
        assert isinstance(locales, list | tuple) and isinstance(user_ids, list | tuple)
        assert isinstance(attributes, dict)
        return cls(
            tuple(str(x) for x in locales),
            tuple(str(x) for x in user_ids),
            tuple(sorted((str(key), str(value)) for key, value in attributes.items())),
        )

    def admits(self, attributes: Mapping[str, Any] | None) -> bool:
        """Whether a person with these (decrypted) attributes is in the audience."""
        if not self.attributes:
            return True
        held = attributes or {}
        return all(
            key in held and attribute_text(held[key]) == value for key, value in self.attributes
        )


def members(
    session: Session,
    category: str,
    defaults: frozenset[str],
    narrow: AudienceFilter,
    *,
    after: int = 0,
    limit: int | None = None,
) -> list[tuple[int, str | None]]:
    """``(recipient id, time zone)`` of the audience in id order, after ``after``: at most
    ``limit`` of them, all of them without. Reads in pages; with attributes to match, each
    person is decided after decrypting theirs, and a person whose attributes none of the
    process's data keys decrypts is left out (a filter that cannot be read is not met)."""
    found: list[tuple[int, str | None]] = []
    page_size = 1000 if limit is None else max(limit, 100)
    while limit is None or len(found) < limit:
        query = subscribed_audience(category, defaults, narrow).where(Recipient.id > after)
        if narrow.attributes:
            query = query.add_columns(stored(Recipient.attributes))
        page: list[Any] = list(session.execute(query.order_by(Recipient.id).limit(page_size)))
        if not page:
            break
        after = int(page[-1][0])
        found.extend((int(row[0]), row[1]) for row in page if _admitted(narrow, row))
    return found if limit is None else found[:limit]


def _admitted(narrow: AudienceFilter, row: Any) -> bool:
    if not narrow.attributes:
        return True
    try:
        attributes = opened(Recipient.attributes, row[2])
    except UndecryptableError:
        log.warning("recipient %s left out of an audience: attributes undecryptable", row[0])
        return False
    return narrow.admits(attributes)


def audience_size(
    session: Session,
    category: str,
    defaults: frozenset[str],
    narrow: AudienceFilter,
    *,
    after: int = 0,
) -> int:
    """How many people :func:`members` would list (counted in the database when no attribute
    has to be matched)."""
    if not narrow.attributes:
        query = subscribed_audience(category, defaults, narrow).where(Recipient.id > after)
        return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    return len(members(session, category, defaults, narrow, after=after))


def subscribed_audience(
    category: str, defaults: frozenset[str], narrow: AudienceFilter
) -> Select[int, str | None]:
    """Recipients who may get ``category`` now (:func:`notify.people.eligibility.may_receive`:
    an address, not erased, not suppressed, subscribed), narrowed by ``narrow``."""
    query = select(Recipient.id, Recipient.timezone).where(
        eligibility.may_receive(category, defaults, utcnow())
    )
    if narrow.locales:
        query = query.where(
            or_(
                *(
                    func.lower(Recipient.locale).like(f"{locale.lower()}%")
                    for locale in narrow.locales
                )
            )
        )
    if narrow.user_ids:
        query = query.where(Recipient.user_id.in_(narrow.user_ids))
    return query


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_to_utc(local: datetime, timezone: str) -> datetime:
    """A wall-clock time in ``timezone`` as an aware UTC instant."""
    return local.replace(tzinfo=_zone(timezone)).astimezone(_zone("UTC"))


def due_time(campaign: Campaign, timezone: str | None, default_timezone: str) -> datetime:
    """When this person's message is due: the campaign's instant, or their local wall time."""
    start = campaign.start_at or utcnow()
    if not campaign.send_at_local:
        return start
    local = datetime.fromisoformat(campaign.send_at_local)
    return local_to_utc(local, timezone or default_timezone)


def earliest_local_start(
    local_iso: str, timezones: Iterable[str | None], default_timezone: str
) -> datetime:
    """The first moment any recipient reaches the local send time."""
    local = datetime.fromisoformat(local_iso)
    zones = {zone or default_timezone for zone in timezones} | {default_timezone}
    return min(local_to_utc(local, zone) for zone in zones)


def audience_timezones(
    session: Session, campaign: Campaign, defaults: frozenset[str]
) -> Sequence[str | None]:
    narrow = AudienceFilter.from_json(campaign.audience)
    query = subscribed_audience(campaign.category, defaults, narrow).with_only_columns(
        Recipient.timezone
    )
    return session.scalars(query.distinct()).all()


FALLBACK_EXAMPLES = 20  # user ids listed per field in a fallback report
FALLBACK_SCAN_LIMIT = 100_000  # recipients read to count fallbacks (each one decrypted)


@dataclass(frozen=True)
class FallbackReport:
    """Who in a campaign's audience lacks a personal field its template reads, and so gets
    the template's fallback there (``recipient.first_name | default("there", true)``)."""

    fields: tuple[str, ...]  # the personal fields the template reads
    scanned: int  # recipients read (the audience, or its first FALLBACK_SCAN_LIMIT)
    complete: bool  # whether ``scanned`` is the whole audience
    lacking: dict[str, int]  # field -> how many of those scanned lack it
    examples: dict[str, list[str]]  # field -> the first few of their user ids


def fallback_report(
    session: Session,
    campaign: Campaign,
    defaults: frozenset[str],
    fields: Iterable[str],
    *,
    scan_limit: int = FALLBACK_SCAN_LIMIT,
) -> FallbackReport:
    """Count, over the audience as it stands, who would get a fallback for each of
    ``fields``. Reads in pages; never more than ``scan_limit`` recipients. A person whose
    fields none of the process's data keys decrypts is not counted."""
    paths = tuple(sorted(path for path in fields if path != "*"))
    lacking = dict.fromkeys(paths, 0)
    examples: dict[str, list[str]] = {path: [] for path in paths}
    narrow = AudienceFilter.from_json(campaign.audience)
    query = (
        subscribed_audience(campaign.category, defaults, narrow)
        .with_only_columns(Recipient.user_id, *recipients.STORED_PERSONAL_FIELDS)
        .order_by(Recipient.id)
        .limit(scan_limit + 1)
        .execution_options(yield_per=1000)
    )
    scanned = 0
    for row in session.execute(query):
        try:
            personal = recipients.personal_fields_of(row)
        except UndecryptableError:
            continue
        if not narrow.admits(personal.attributes):
            continue
        if scanned == scan_limit:
            return FallbackReport(paths, scanned, False, lacking, examples)
        scanned += 1
        for path in personal.lacking(paths):
            lacking[path] += 1
            if len(examples[path]) < FALLBACK_EXAMPLES:
                examples[path].append(row.user_id)
    return FallbackReport(paths, scanned, True, lacking, examples)


def reach(session: Session, category: str, defaults: frozenset[str]) -> dict[str, int]:
    """How many people a campaign of ``category`` would reach now, and why the others would
    not: ``{"reachable": n, "unsubscribed": n, "suppressed": n, ...}`` by the eligibility
    rule's own reasons (erased people are left out: they are nobody any more)."""
    reason = eligibility.blocked_reason(category, defaults, utcnow()).label("reason")
    rows = session.execute(
        select(reason, func.count()).where(Recipient.erased_at.is_(None)).group_by(reason)
    ).all()
    return {str(why or "reachable"): int(count) for why, count in rows}
