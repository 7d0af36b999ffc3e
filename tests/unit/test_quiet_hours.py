"""Quiet hours as a window in the person's own time zone: inside, across midnight, clock changes,
and that essential mail never waits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notify.people.quiet_hours import QuietHoursError, holds_until, parse, waits_until

NIGHT = parse("22:00", "07:00")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 28, 23, 0, tzinfo=UTC), datetime(2026, 11, 29, 7, 0, tzinfo=UTC)),
        (datetime(2026, 11, 28, 3, 0, tzinfo=UTC), datetime(2026, 11, 28, 7, 0, tzinfo=UTC)),
        (datetime(2026, 11, 28, 22, 0, tzinfo=UTC), datetime(2026, 11, 29, 7, 0, tzinfo=UTC)),
        (datetime(2026, 11, 28, 7, 0, tzinfo=UTC), None),  # the end itself is outside
        (datetime(2026, 11, 28, 12, 0, tzinfo=UTC), None),
    ],
)
def test_a_window_across_midnight_in_utc(now: datetime, expected: datetime | None) -> None:
    assert waits_until(NIGHT, None, now) == expected


def test_the_window_is_in_the_persons_own_zone() -> None:
    # 03:00 UTC is 22:00 the evening before in New York (UTC-5 in November): inside, until
    # 07:00 there, which is 12:00 UTC.
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    assert waits_until(NIGHT, "America/New_York", now) == datetime(2026, 11, 28, 12, tzinfo=UTC)
    # 23:00 UTC is 08:00 the next morning in Tokyo: outside.
    assert waits_until(NIGHT, "Asia/Tokyo", datetime(2026, 11, 28, 23, 0, tzinfo=UTC)) is None


def test_a_window_within_one_day() -> None:
    lunch = parse("12:00", "13:30")
    assert waits_until(lunch, "UTC", datetime(2026, 1, 5, 12, 45, tzinfo=UTC)) == datetime(
        2026, 1, 5, 13, 30, tzinfo=UTC
    )
    assert waits_until(lunch, "UTC", datetime(2026, 1, 5, 11, 59, tzinfo=UTC)) is None


def test_an_end_skipped_by_a_clock_change_moves_forward_by_the_gap() -> None:
    # London skips 01:00-02:00 on 29 March 2026: an end of 01:30 becomes 02:30 BST (01:30 UTC).
    early = parse("00:30", "01:30")
    now = datetime(2026, 3, 29, 0, 45, tzinfo=UTC)  # 00:45 GMT, inside
    assert waits_until(early, "Europe/London", now) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_an_unknown_zone_counts_as_utc() -> None:
    now = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    assert waits_until(NIGHT, "Mars/Olympus_Mons", now) == waits_until(NIGHT, None, now)


@pytest.mark.parametrize(
    ("start", "end"),
    [("22:00", None), (None, "07:00"), ("24:00", "07:00"), ("7:00", "08:00"), ("22:00", "x")],
)
def test_a_half_or_malformed_window_is_refused(start: str | None, end: str | None) -> None:
    with pytest.raises(QuietHoursError):
        parse(start, end)


def test_no_window_and_an_empty_window_hold_nothing() -> None:
    assert parse(None, None) is None and parse("", "") is None
    assert parse("08:00", "08:00") is None


def test_essential_mail_never_waits_and_bad_stored_data_holds_nothing() -> None:
    now = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    assert holds_until("product_updates", "22:00", "07:00", None, now) is not None
    assert holds_until("security", "22:00", "07:00", None, now) is None
    assert holds_until("admin", "22:00", "07:00", None, now) is None
    assert holds_until("product_updates", "22:00", None, None, now) is None
