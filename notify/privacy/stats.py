"""Aggregate counts without personal data: per day, category and template, and unsubscribes by
route. Rows deleted by retention are counted from ``daily_counts``, live rows directly."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notify.models import ConsentEvent, DailyCount, Notification, NotificationStatus
from notify.privacy.daily_counts import day_of, suppression_reason_column

FINISHED = (NotificationStatus.SENT, NotificationStatus.FAILED, NotificationStatus.CANCELLED)
OUTCOMES = (*(status.value for status in FINISHED), "pending")


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(start, time(), tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC),
    )


def daily(session: Session, start: date, end: date) -> dict[str, Any]:
    """Counts for the UTC days ``start`` to ``end`` inclusive."""
    since, until = _bounds(start, end)
    day = day_of(session, Notification.created_at).label("day")
    reason = suppression_reason_column().label("reason")
    live = session.execute(
        select(
            day,
            Notification.category,
            Notification.template,
            Notification.status,
            reason,
            func.count(),
        )
        .where(Notification.created_at >= since, Notification.created_at < until)
        .group_by(day, Notification.category, Notification.template, Notification.status, reason)
    ).all()
    kept = session.execute(
        select(
            DailyCount.day,
            DailyCount.category,
            DailyCount.template,
            DailyCount.status,
            DailyCount.reason,
            DailyCount.count,
        ).where(DailyCount.day >= start.isoformat(), DailyCount.day <= end.isoformat())
    ).all()
    table: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {**dict.fromkeys(OUTCOMES, 0), "suppressed": defaultdict(int)}
    )
    for row_day, category, template, status, reason, count in [*live, *kept]:
        entry = table[(str(row_day), category, template)]
        outcome = NotificationStatus(status)
        if outcome is NotificationStatus.SUPPRESSED:
            entry["suppressed"][reason or "unknown"] += int(count)
        elif outcome in NotificationStatus.in_flight():
            entry["pending"] += int(count)
        else:
            entry[outcome.value] += int(count)
    event_day = day_of(session, ConsentEvent.created_at).label("day")
    unsubscribes = session.execute(
        select(event_day, ConsentEvent.category, ConsentEvent.source, func.count())
        .where(
            ConsentEvent.action == "unsubscribed",
            ConsentEvent.created_at >= since,
            ConsentEvent.created_at < until,
        )
        .group_by(event_day, ConsentEvent.category, ConsentEvent.source)
    ).all()
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": [
            {"day": d, "category": c, "template": t, **{**v, "suppressed": dict(v["suppressed"])}}
            for (d, c, t), v in sorted(table.items())
        ],
        "unsubscribes": [
            {"day": str(d), "category": c, "route": source, "count": int(n)}
            for d, c, source, n in sorted(unsubscribes, key=lambda r: (str(r[0]), r[1], r[2]))
        ],
    }
