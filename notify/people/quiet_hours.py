"""Quiet hours: a daily window, in the person's own time zone, in which they get no optional mail.

Optional mail that may go out (:mod:`notify.people.eligibility`) but is claimed inside the window
waits until the window ends; essential mail never waits. A window may cross midnight
(``22:00``-``07:00``); start and end equal means no window. The time zone is the person's own
(``Recipient.timezone``), or ``NOTIFY_DEFAULT_TIMEZONE`` when they have none (the callers pass
it in); a zone this machine does not know counts as UTC. On a day a clock change skips the end
time, the window ends that much later by the clock (02:30 for an end of 01:30 skipped by a
one-hour change); on a day the end time happens twice, at its first occurrence.

Pure: no database, no clock (``now`` is passed in). :func:`holds_until` is the one place that
decides whether a message waits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from notify.categories import get_category
from notify.i18n import formatting

CLOCK = re.compile(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")


class QuietHoursError(ValueError):
    """Not a window: each end must be a wall-clock time ``HH:MM``, and both or neither given."""


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @property
    def text(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse(start: str | None, end: str | None) -> QuietHours | None:
    """The window from its two ends as stored or typed (``HH:MM``); None for neither (or for two
    equal ends: an empty window). Raises :class:`QuietHoursError` for anything else."""
    if not start and not end:
        return None
    if not start or not end or not CLOCK.match(start) or not CLOCK.match(end):
        raise QuietHoursError("quiet hours need a start and an end, each as HH:MM")
    window = QuietHours(time.fromisoformat(start), time.fromisoformat(end))
    return None if window.start == window.end else window


def _at(day: date, clock: time, zone: tzinfo) -> datetime:
    """``clock`` on ``day`` in ``zone``, in UTC (``fold=0``: a time the zone skips moves forward
    by the gap, a time it repeats is its first occurrence)."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def waits_until(window: QuietHours | None, zone_name: str | None, now: datetime) -> datetime | None:
    """When optional mail claimed at ``now`` may go: the end of the window if ``now`` is inside
    it (in the person's zone), else None (it may go now)."""
    if window is None:
        return None
    zone = formatting.zone(zone_name)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    today = local.date()
    if window.start < window.end:  # within one day
        inside = window.start <= clock < window.end
        end_day = today
    else:  # across midnight: from start today to end tomorrow, or the rest from yesterday
        inside = clock >= window.start or clock < window.end
        end_day = today + timedelta(days=1) if clock >= window.start else today
    if not inside:
        return None
    end = _at(end_day, window.end, zone)
    return end if end > now else None


def holds_until(
    category_key: str,
    start: str | None,
    end: str | None,
    zone_name: str | None,
    now: datetime,
) -> datetime | None:
    """The one rule for delaying mail: a message of ``category_key`` that may go out at
    ``now`` waits until the returned time (the end of the person's window ``start``-``end``)
    if the category is optional and ``now`` is inside the window; None means it goes now.
    Essential mail never waits."""
    if get_category(category_key).essential:
        return None
    try:
        window = parse(start, end)
    except QuietHoursError:  # never stored so (the writers check): no window rather than stuck
        return None
    return waits_until(window, zone_name, now)
