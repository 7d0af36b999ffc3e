"""A rate limit shared by every worker (``limits`` on Redis; in memory without Redis)."""

from __future__ import annotations

import time

from limits import (
    RateLimitItem,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
    RateLimitItemPerSecond,
)
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


def limit_item(per_second: float) -> RateLimitItem:
    """The rate as a whole number of messages per second, minute or hour (0.2/s → 12/min)."""
    if per_second >= 1:
        return RateLimitItemPerSecond(int(per_second))
    if per_second * 60 >= 1:
        return RateLimitItemPerMinute(int(per_second * 60))
    return RateLimitItemPerHour(max(int(per_second * 3600), 1))


class RateLimiter:
    """``wait(key, per_second, until=…)`` returns once one more message for ``key`` fits.

    With a ``redis://`` storage the window is shared by all workers together; ``memory://``
    (the embedded default) limits only this process.
    """

    def __init__(self, storage_uri: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def wait(self, key: str, per_second: float, *, until: float | None = None) -> bool:
        """Block until allowed; False (nothing taken) if ``until`` (monotonic) comes first."""
        item = limit_item(per_second)
        while not self._limiter.hit(item, "notify", key):
            reset_at = self._limiter.get_window_stats(item, "notify", key).reset_time
            pause = min(max(reset_at - time.time(), 0.005), 0.25)
            if until is not None and time.monotonic() + pause > until:
                return False
            time.sleep(pause)
        return True
