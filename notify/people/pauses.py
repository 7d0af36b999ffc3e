"""A person's pauses and quiet hours: the breaks they take from optional mail without
unsubscribing. Each change is a consent event.

* A pause holds back every message of one optional category for 30 or 90 days
  (:data:`PAUSE_DAYS`); the eligibility rule suppresses them as ``paused``, and the category
  resumes by itself when the pause ends (or at once on :func:`resume`). Mail held back by a pause
  is not sent later.
* Quiet hours delay optional mail to the end of a daily window in the person's time zone
  (:mod:`notify.people.quiet_hours`).

Data functions take the session first and never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from notify.categories import get_category
from notify.db import insert_on_conflict
from notify.models import Pause, Recipient
from notify.people import consent
from notify.people.consent import Origin
from notify.people.preferences import EssentialCategoryError
from notify.people.quiet_hours import QuietHours
from notify.people.suppressions import ALL_CATEGORIES

PAUSE_DAYS = (30, 90)
QUIET_HOURS_ACTION = "quiet_hours:"  # consent-log action prefix: the window, or "off"


class PauseLengthError(ValueError):
    """A pause lasts one of :data:`PAUSE_DAYS` days."""


def paused_until(session: Session, recipient_id: int, now: datetime) -> dict[str, datetime]:
    """The person's pauses that have not ended at ``now``, by category."""
    rows = session.execute(
        select(Pause.category, Pause.until).where(
            Pause.recipient_id == recipient_id, Pause.until > now
        )
    ).all()
    return {str(category): until for category, until in rows}


def pause(
    session: Session,
    recipient_id: int,
    category_key: str,
    days: int,
    origin: Origin,
    *,
    now: datetime,
) -> datetime:
    """Pause an optional category for ``days`` from ``now`` (a new pause replaces a running
    one); returns its end. Raises :class:`PauseLengthError` or ``EssentialCategoryError``
    (nothing written)."""
    if days not in PAUSE_DAYS:
        raise PauseLengthError(f"a pause lasts {' or '.join(map(str, PAUSE_DAYS))} days")
    if get_category(category_key).essential:
        raise EssentialCategoryError(category_key)
    until = now + timedelta(days=days)
    upsert = insert_on_conflict(session, Pause).values(
        recipient_id=recipient_id, category=category_key, until=until, created_at=now
    )
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["recipient_id", "category"],
            set_={"until": upsert.excluded.until, "created_at": upsert.excluded.created_at},
        )
    )
    consent.record(session, recipient_id, category_key, "paused", origin, until.isoformat())
    return until


def resume(
    session: Session, recipient_id: int, category_key: str, origin: Origin, *, now: datetime
) -> bool:
    """End a running pause of the category at once; True if there was one."""
    running = paused_until(session, recipient_id, now).get(category_key)
    session.execute(
        delete(Pause).where(Pause.recipient_id == recipient_id, Pause.category == category_key)
    )
    if running is None:
        return False
    consent.record(session, recipient_id, category_key, "resumed", origin)
    return True


def set_quiet_hours(
    session: Session, recipient_id: int, window: QuietHours | None, origin: Origin
) -> bool:
    """Store the person's quiet hours (None: none); True if that changed them. Logged as
    ``quiet_hours:<HH:MM-HH:MM>`` or ``quiet_hours:off`` for all categories."""
    recipient = session.get(Recipient, recipient_id)
    if recipient is None:
        return False
    start = None if window is None else f"{window.start:%H:%M}"
    end = None if window is None else f"{window.end:%H:%M}"
    if (recipient.quiet_hours_start, recipient.quiet_hours_end) == (start, end):
        return False
    recipient.quiet_hours_start, recipient.quiet_hours_end = start, end
    action = QUIET_HOURS_ACTION + ("off" if window is None else window.text)
    consent.record(session, recipient_id, ALL_CATEGORIES, action, origin)
    return True
