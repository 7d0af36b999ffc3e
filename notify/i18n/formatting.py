"""Dates, times, numbers and lists written for a locale (with Babel) and a time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.lists import format_list
from babel.numbers import format_decimal

DEFAULT_TIME_ZONE = "UTC"


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone ``name``; UTC for none or an unknown name (stored zones are checked when
    they are set, so this is only a guard)."""
    try:
        return ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


def parse_moment(value: object) -> datetime | None:
    """An ISO 8601 date-time (``2026-11-27T09:14:00Z``, with an offset, or naive meaning UTC),
    or None when ``value`` is not one."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if "T" not in value and " " not in value.strip():
            return None  # a date alone is not a moment
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@cache
def _babel_locale(locale: str) -> Locale:
    return Locale.parse(locale.replace("-", "_"))


@cache
def _moment_pattern(locale: str) -> str:
    """The locale's long date and short time joined as its long date-time pattern joins them,
    then the zone's long name: one CLDR pattern, so a moment is formatted in one pass."""
    babel_locale = _babel_locale(locale)
    joined = str(babel_locale.datetime_formats["long"])
    day = babel_locale.date_formats["long"].pattern
    time = babel_locale.time_formats["short"].pattern
    return joined.replace("{1}", day).replace("{0}", f"{time} zzzz")


def moment(value: object, locale: str, time_zone: str | None) -> str:
    """A moment as the person reads it: long date, short time and the zone's name, in their
    zone (``27. November 2026, 10:14 Mitteleuropäische Normalzeit``). Text that is not an ISO
    8601 date-time is returned as it is, so a producer's own wording still shows."""
    parsed = parse_moment(value)
    if parsed is None:
        return str(value)
    local = parsed.astimezone(zone(time_zone))
    return format_datetime(local, _moment_pattern(locale), locale=_babel_locale(locale))


def day(value: object, locale: str, time_zone: str | None) -> str:
    """A date in the long form of ``locale`` (``27 novembre 2026``); a date-time is first moved
    into the person's zone. Other text is returned as it is."""
    if isinstance(value, str):
        text = value
        try:
            value = parse_moment(text) or date.fromisoformat(text.strip())
        except ValueError:
            return text
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone(time_zone))
    if not isinstance(value, date):
        return str(value)
    return format_date(value, "long", locale=_babel_locale(locale))


def number(value: object, locale: str) -> str:
    """A number with the locale's separators (``1,234.5``, ``1.234,5``, ``1 234,5``); text
    that is not a number is returned as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, str):
        text = value
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            return text
    return format_decimal(value, locale=locale.replace("-", "_"))


def listing(items: list[str], locale: str) -> str:
    """``a, b and c`` in the locale's words."""
    return format_list([str(item) for item in items], locale=locale.replace("-", "_"))
