"""The API-key cache: how long a checked key is trusted, and nothing longer."""

from __future__ import annotations

from notify.producers.api_keys import Caller, CallerCache

CALLER = Caller(key_id=1, name="billing", scopes=frozenset({"notifications:send"}))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_checked_key_is_trusted_for_the_configured_seconds_and_no_longer() -> None:
    clock = Clock()
    cache = CallerCache(5, clock=clock)
    cache.put("nfy_secret", CALLER)
    clock.now += 4.9
    assert cache.get("nfy_secret") == CALLER
    clock.now += 0.1
    assert cache.get("nfy_secret") is None  # a revocation is seen from here on


def test_zero_seconds_trusts_nothing() -> None:
    cache = CallerCache(0)
    cache.put("nfy_secret", CALLER)
    assert cache.get("nfy_secret") is None


def test_another_secret_is_not_the_cached_one() -> None:
    cache = CallerCache(5)
    cache.put("nfy_secret", CALLER)
    assert cache.get("nfy_other") is None
