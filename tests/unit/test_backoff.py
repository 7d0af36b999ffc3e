"""The worker's retry backoff: exponential, capped, fully jittered, with a floor; for any base,
whole seconds or not."""

from __future__ import annotations

import random

import pytest

from notify.celery_app import WorkerContext
from notify.config import Settings


@pytest.mark.parametrize(("base", "longest"), [(0.5, 2), (30.0, 600), (0.25, 1)])
def test_each_delay_lies_between_half_the_base_and_the_capped_exponential(
    base: float, longest: int
) -> None:
    context = WorkerContext(Settings(retry_base_seconds=base, retry_max_seconds=longest))
    random.seed(7)
    for attempts in range(1, 12):
        ceiling = min(longest, base * 2 ** (attempts - 1))
        delays = [context.retry_delay(attempts) for _ in range(200)]
        assert all(base / 2 <= delay <= max(ceiling, base / 2) for delay in delays), attempts
        assert len(set(delays)) > 50  # jittered, not whole seconds (the floor takes some)


def test_later_attempts_wait_longer_on_average_until_the_cap() -> None:
    context = WorkerContext(Settings(retry_base_seconds=0.5, retry_max_seconds=4))
    random.seed(11)
    means = [
        sum(context.retry_delay(attempts) for _ in range(2000)) / 2000 for attempts in (1, 2, 3, 4)
    ]
    assert means[0] < means[1] < means[2] < means[3]
    assert 1.8 < means[3] < 2.2  # uniform up to the cap of 4 s
