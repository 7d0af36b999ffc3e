"""Campaign batches give way to essential mail: how long they wait, and who never waits."""

from __future__ import annotations

import redis

from notify.campaigns.yielding import STEP_SECONDS, EssentialFirst, for_worker
from notify.config import Settings


class Broker:
    """The essential list's length as a broker would report it, one reading per call."""

    def __init__(self, *lengths: int, error_first: bool = False) -> None:
        self.lengths = list(lengths)
        self.error_first = error_first
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        if self.error_first and self.reads == 1:
            raise redis.ConnectionError("gone")
        return self.lengths.pop(0) if self.lengths else 0


def test_nothing_waiting_means_no_wait_and_one_read() -> None:
    broker = Broker(0)
    waited = EssentialFirst(broker, longest=1.0).give_way()
    assert broker.reads == 1
    assert waited < STEP_SECONDS


def test_a_campaign_waits_until_the_essential_messages_are_taken() -> None:
    broker = Broker(3, 2, 0)
    waited = EssentialFirst(broker, longest=5.0).give_way()
    assert broker.reads == 3
    assert waited >= 2 * STEP_SECONDS


def test_a_campaign_never_waits_longer_than_the_setting_or_its_deadline() -> None:
    always_busy = Broker(*([1] * 1000))
    waited = EssentialFirst(always_busy, longest=0.1).give_way()
    assert 0.1 - STEP_SECONDS <= waited <= 0.1 + STEP_SECONDS
    assert always_busy.reads < 1000

    import time

    soon = time.monotonic() + 0.05
    waited = EssentialFirst(Broker(*([1] * 1000)), longest=5.0).give_way(until=soon)
    assert waited <= 0.05 + STEP_SECONDS


def test_a_broker_that_cannot_be_read_counts_as_nothing_waiting() -> None:
    broker = Broker(5, error_first=True)
    assert EssentialFirst(broker, longest=5.0).give_way() < STEP_SECONDS
    assert broker.reads == 1


def test_only_a_bulk_worker_on_redis_or_rabbitmq_gives_way() -> None:
    on_redis = Settings(broker_url="redis://127.0.0.1:6379/11")
    bulk_only = {"bulk", "periodic"}
    assert for_worker(on_redis, consumed=bulk_only).longest == 1.0
    # A worker that also serves essential would wait for itself.
    assert for_worker(on_redis, consumed={"essential", "bulk"}).longest == 0
    assert for_worker(on_redis, consumed=set()).longest == 0
    on_rabbitmq = Settings(
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
        rate_limit_url="redis://127.0.0.1:6379/11",
    )
    assert for_worker(on_rabbitmq, consumed=bulk_only).longest == 1.0
    assert for_worker(on_rabbitmq, consumed={"essential", "bulk"}).longest == 0
    sql = Settings(broker_url="sqla+sqlite:///var/broker.sqlite")
    assert for_worker(sql, consumed=bulk_only).longest == 0
    off = Settings(broker_url="redis://127.0.0.1:6379/11", campaign_yield_seconds=0)
    assert for_worker(off, consumed=bulk_only).longest == 0
    assert not for_worker(off, consumed=bulk_only).busy()
