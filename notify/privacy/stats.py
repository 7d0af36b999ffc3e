"""Aggregate counts without personal data: per day, category and template, and unsubscribes by
route. Hours already counted (:mod:`notify.privacy.daily_counts`) and rows deleted by retention
are read from ``daily_counts``; the rows of the other hours (usually the last one or two) are
counted directly.

An unsubscribe's route is the source its consent event records (``ConsentSource``): a mail
client's RFC 8058 POST is ``one_click``, a press of the button on the unsubscribe page is
``page``, the preference page ``preference_centre``, the API ``api``; each route is counted on
its own; of each route's count, ``suspected`` were presses of the page's button later found in a
link scanner's burst (:mod:`notify.people.scanner_guard`) and ``confirmed`` the rest.
``consent_versions`` counts people by the version of a category's wording they last
agreed to (:func:`consent_versions`), as of now."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, union_all
from sqlalchemy.orm import Session

from notify.models import (
    ConsentEvent,
    CountedHour,
    DailyCount,
    Notification,
    NotificationStatus,
    Recipient,
)
from notify.people.consent import SUSPECTED
from notify.privacy.daily_counts import (
    HOUR,
    day_bounds,
    day_of,
    hour_key,
    hour_of,
    suppression_reason_column,
)

FINISHED = (NotificationStatus.SENT, NotificationStatus.FAILED, NotificationStatus.CANCELLED)
OUTCOMES = (*(status.value for status in FINISHED), "pending")
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 1, 1)
DEFAULT_DAYS = 30
MAX_DAYS = 401  # inclusive: from and to at most 400 days apart


class RangeError(ValueError):
    """A date range the stats cannot be computed for. ``field`` names the bad end, ``from`` or
    ``to``, as the API spells it; ``msg`` says why in one line."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field
        self.msg = msg


def stats_range(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """The UTC days to count, from the optional ends a caller gave.

    ``to`` defaults to ``today`` and ``from`` to the 30 days ending at ``to`` (never before
    :data:`EARLIEST`). Raises :class:`RangeError` unless both ends lie between :data:`EARLIEST`
    and :data:`LATEST`, ``from`` is not after ``to``, and the range spans at most
    ``MAX_DAYS - 1`` days; so every range returned can be counted without any date arithmetic
    overflowing.
    """
    for field, value in (("from", start), ("to", end)):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise RangeError(field, f"must be between {EARLIEST} and {LATEST}")
    end = end or today
    if not EARLIEST <= end <= LATEST:
        raise RangeError("to", f"must be between {EARLIEST} and {LATEST}")
    start = start or max(EARLIEST, end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        raise RangeError("from", "must not be after to")
    if (end - start).days >= MAX_DAYS:
        raise RangeError("from", f"at most {MAX_DAYS - 1} days before to")
    return start, end


def daily(session: Session, start: date, end: date) -> dict[str, Any]:
    """Counts for the UTC days ``start`` to ``end`` inclusive. Raises :class:`RangeError`
    (before any query) for a range :func:`stats_range` would refuse.

    ``unsubscribes`` has one entry per day, category and route (see the module's docstring)
    with at least one opt-out, ordered by day, category and route."""
    start, end = stats_range(start, end, end)
    since, until = day_bounds(start)[0], day_bounds(end)[1]
    table: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {**dict.fromkeys(OUTCOMES, 0), "suppressed": defaultdict(int)}
    )
    for row_day, category, template, status, reason, count in _counts(session, start, end):
        entry = table[(str(row_day), category, template)]
        outcome = NotificationStatus(status)
        if outcome is NotificationStatus.SUPPRESSED:
            entry["suppressed"][reason or "unknown"] += int(count)
        elif outcome in NotificationStatus.in_flight():
            entry["pending"] += int(count)
        else:
            entry[outcome.value] += int(count)
    event_day = day_of(session, ConsentEvent.created_at).label("day")
    opt_outs = session.execute(
        select(
            event_day, ConsentEvent.category, ConsentEvent.source, ConsentEvent.action, func.count()
        )
        .where(
            ConsentEvent.action.in_(("unsubscribed", SUSPECTED)),
            ConsentEvent.created_at >= since,
            ConsentEvent.created_at < until,
        )
        .group_by(event_day, ConsentEvent.category, ConsentEvent.source, ConsentEvent.action)
    ).all()
    unsubscribes: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
        lambda: {"count": 0, "suspected": 0}
    )
    for d, category, source, action, n in opt_outs:
        entry = unsubscribes[(str(d), str(category), str(source))]
        entry["count" if action == "unsubscribed" else "suspected"] += int(n)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": [
            {"day": d, "category": c, "template": t, **{**v, "suppressed": dict(v["suppressed"])}}
            for (d, c, t), v in sorted(table.items())
        ],
        "unsubscribes": [
            {
                "day": d,
                "category": c,
                "route": source,
                "count": n["count"],
                "suspected": min(n["suspected"], n["count"]),
                "confirmed": n["count"] - min(n["suspected"], n["count"]),
            }
            for (d, c, source), n in sorted(unsubscribes.items())
            if n["count"]
        ],
        "consent_versions": consent_versions(session),  # now, whatever the range
    }


def _counts(session: Session, start: date, end: date) -> list[tuple[Any, ...]]:
    """(day, category, template, status, reason, count) for the days ``start`` to ``end``: the
    kept counts (``daily_counts``: counted hours, and rows retention deleted) and the rows of
    the hours not counted yet. One statement, so an hour counted meanwhile is read once, either
    way. Only the uncounted hours' rows are read (each run of them as one range of
    ``created_at``): usually the last hour or two."""
    since, until = day_bounds(start)[0], day_bounds(end)[1]
    counted_in_range = select(CountedHour.hour).where(
        CountedHour.hour >= hour_key(since), CountedHour.hour < hour_key(until)
    )
    counted = set(session.scalars(counted_in_range))
    kept = select(
        DailyCount.day,
        DailyCount.category,
        DailyCount.template,
        DailyCount.status,
        DailyCount.reason,
        DailyCount.count,
    ).where(DailyCount.day >= start.isoformat(), DailyCount.day <= end.isoformat())
    ranges = list(_uncounted_ranges(since, until, counted))
    if not ranges:
        return [tuple(row) for row in session.execute(kept)]
    day = day_of(session, Notification.created_at)
    reason = suppression_reason_column()
    live = (
        select(
            day.label("day"),
            Notification.category,
            Notification.template,
            Notification.status,
            reason.label("reason"),
            func.count().label("count"),
        )
        .where(
            or_(
                *(
                    and_(Notification.created_at >= low, Notification.created_at < high)
                    for low, high in ranges
                )
            ),
            hour_of(session, Notification.created_at).not_in(counted_in_range),
        )
        .group_by(day, Notification.category, Notification.template, Notification.status, reason)
    )
    return [tuple(row) for row in session.execute(union_all(live, kept))]


def _uncounted_ranges(
    since: datetime, until: datetime, counted: set[str]
) -> Iterator[tuple[datetime, datetime]]:
    """The runs of hours from ``since`` to before ``until`` whose keys are not in ``counted``,
    as ranges of instants."""
    low: datetime | None = None
    start = since
    while start < until:
        if hour_key(start) in counted:
            if low is not None:
                yield low, start
                low = None
        elif low is None:
            low = start
        start += HOUR
    if low is not None:
        yield low, until


def consent_versions(session: Session) -> list[dict[str, Any]]:
    """How many live people agree to each category, by the version of its wording they last
    agreed to: people whose latest subscribe-or-unsubscribe event for the category is a
    subscribe, counted by that event's version (``unknown`` for events logged before versions
    were kept). People on a category's default who never chose are not counted. Counts only."""
    latest = (
        select(func.max(ConsentEvent.id).label("id"))
        .where(
            ConsentEvent.action.in_(("subscribed", "unsubscribed")),
            ConsentEvent.recipient_id.is_not(None),
        )
        .group_by(ConsentEvent.recipient_id, ConsentEvent.category)
        .subquery()
    )
    rows = session.execute(
        select(ConsentEvent.category, ConsentEvent.category_version, func.count())
        .join(latest, latest.c.id == ConsentEvent.id)
        .join(Recipient, Recipient.id == ConsentEvent.recipient_id)
        .where(ConsentEvent.action == "subscribed", Recipient.erased_at.is_(None))
        .group_by(ConsentEvent.category, ConsentEvent.category_version)
    ).all()
    return [
        {"category": category, "version": version or "unknown", "people": int(count)}
        for category, version, count in sorted(rows, key=lambda r: (r[0], r[1] or ""))
    ]
