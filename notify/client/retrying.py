"""When and how long the client waits before trying a request again. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (the first included); the wait before retry ``n`` (1, 2, …) is
    ``first_wait * 2 ** (n - 1)`` up to ``longest_wait``, times a random factor from 0.5 to
    1.5, unless the answer's ``Retry-After`` asks for longer (up to ``longest_wait``)."""

    attempts: int = 5
    first_wait: float = 0.5
    longest_wait: float = 30.0

    def wait(
        self, retry: int, retry_after: str | None = None, rng: random.Random | None = None
    ) -> float:
        factor: float = (rng or random).uniform(0.5, 1.5)
        backoff = min(self.longest_wait, self.first_wait * 2 ** max(0, retry - 1)) * factor
        asked = _seconds(retry_after)
        return float(min(self.longest_wait, max(backoff, asked)) if asked is not None else backoff)


def retried(status: int) -> bool:
    return status in RETRIED_STATUSES


def _seconds(retry_after: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by notify)."""
    if retry_after is None:
        return None
    try:
        value = float(retry_after.strip())
    except ValueError:
        return None
    return value if value >= 0 else None
