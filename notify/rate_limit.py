"""A rate limit shared by every worker (``limits`` on Redis; in memory without Redis)."""

from __future__ import annotations

import time

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class RateLimiter:
    """``wait(key, per_second)`` returns once one more message for ``key`` fits the limit.

    With a ``redis://`` storage the window is shared by all workers together; ``memory://``
    (the embedded default) limits only this process.
    """

    def __init__(self, storage_uri: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def wait(self, key: str, per_second: float, max_wait: float = 5.0) -> bool:
        """Block until allowed, at most ``max_wait`` seconds; False if it gave up."""
        amount = max(int(per_second), 1)
        item = RateLimitItemPerSecond(amount, 1)
        deadline = time.monotonic() + max_wait
        while not self._limiter.hit(item, "notify", key):
            reset_at = self._limiter.get_window_stats(item, "notify", key).reset_time
            pause = min(max(reset_at - time.time(), 0.005), 0.25)
            if time.monotonic() + pause > deadline:
                return False
            time.sleep(pause)
        return True
