"""Soft bounces: counted per address, and an address that keeps bouncing suppressed.

The rule: soft bounces on ``NOTIFY_SOFT_BOUNCE_DAYS`` (3) different UTC days within
``NOTIFY_SOFT_BOUNCE_WINDOW_DAYS`` (14) of the first one suppress the address like a hard
bounce (one full mailbox, or one bad day of a server, does not). A soft bounce after the
window starts a new one. Addresses are kept as their keyed hash only.

Data functions take the session first and never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.db import insert_on_conflict
from notify.delivery.transport import HARD_BOUNCE_CODES
from notify.models import SoftBounce, SuppressionReason
from notify.models.base import utcnow
from notify.people import suppressions
from notify.people.consent import Origin


def counts(status: str | None) -> bool:
    """Whether a failure with this enhanced status is a soft bounce of the address: not a hard
    one (5.1.1, 5.1.2, 5.2.1), and not a policy refusal (5.7.x, about the sender or the
    content, not the address)."""
    if status is None:
        return True
    return status not in HARD_BOUNCE_CODES and not status.startswith("5.7.")


def record(
    session: Session, settings: Settings, address: str, origin: Origin, now: datetime | None = None
) -> bool:
    """Count one soft bounce of ``address``; True if it suppressed the address."""
    moment = now or utcnow()
    day = moment.date().isoformat()
    digest = suppressions.address_hash(settings.hash_key, address)
    # The first soft bounce of two at once must not fail the other: insert if absent, then
    # read the row locked (on PostgreSQL; SQLite has one writer at a time).
    fresh = {"address_hash": digest, "first_at": moment, "last_day": day, "days": 0, "count": 0}
    session.execute(
        insert_on_conflict(session, SoftBounce)
        .values(**fresh)
        .on_conflict_do_nothing(index_elements=["address_hash"])
    )
    row = session.scalars(
        select(SoftBounce)
        .where(SoftBounce.address_hash == digest)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    window = timedelta(days=settings.soft_bounce_window_days)
    if row.count == 0 or moment - row.first_at > window:
        row.first_at, row.last_day, row.days, row.count = moment, day, 1, 1
    else:
        row.count += 1
        if row.last_day != day:
            row.days += 1
            row.last_day = day
    session.flush()
    if row.days < settings.soft_bounce_days:
        return False
    detail = f"soft bounces on {row.days} days within {settings.soft_bounce_window_days} days"
    suppressions.suppress(
        session, settings.hash_key, address, SuppressionReason.HARD_BOUNCE, origin, detail
    )
    session.delete(row)
    return True
