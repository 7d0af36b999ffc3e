"""Notification ids carry the time their row was made (UUID version 7), which tells PostgreSQL
which month's partition to read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from notify.models.notifications import (
    created_at_of,
    month_bounds,
    new_notification_id,
    with_ids,
)


def test_an_id_made_for_a_moment_is_a_version_7_uuid_carrying_it_to_the_millisecond() -> None:
    moment = datetime(2026, 11, 30, 23, 59, 59, 999_999, tzinfo=UTC)
    made = new_notification_id(moment)
    parsed = uuid.UUID(made)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert created_at_of(made) == moment.replace(microsecond=999_000)  # floor: same month
    assert len({new_notification_id(moment) for _ in range(1000)}) == 1000


def test_ids_sort_by_the_time_they_carry() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = [new_notification_id(start + timedelta(milliseconds=step)) for step in range(50)]
    assert sorted(made) == made


def test_other_ids_carry_nothing_and_bound_nothing() -> None:
    made = new_notification_id(datetime(2026, 3, 1, tzinfo=UTC))
    for other in (new_notification_id(), str(uuid.uuid4()), "n-old", ""):
        assert created_at_of(other) is None
        assert month_bounds([made, other]) is None
    assert month_bounds([]) is None
    assert "created_at" not in str(with_ids([made, "n-old"]))


def test_bounds_run_from_the_first_month_to_the_end_of_the_last_across_a_year() -> None:
    december = new_notification_id(datetime(2026, 12, 31, 23, 0, tzinfo=UTC))
    january = new_notification_id(datetime(2027, 1, 2, tzinfo=UTC))
    assert month_bounds([january, december]) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 2, 1, tzinfo=UTC),
    )
    assert "created_at" in str(with_ids([december, january]))
