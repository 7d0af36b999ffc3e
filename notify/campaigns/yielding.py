"""Campaigns give way to essential mail: before each group, a campaign batch on a worker that
does not serve the ``essential`` lane waits while essential messages wait on the broker.

On one machine the web, the essential worker and a bulk worker share the cores and the
database. A campaign sending as fast as it can then slows every alert behind it, even on a
worker of its own. Here the campaign pauses instead, so an alert waits for the essential
worker only.

Guarantees and bounds:

* a group waits at most ``NOTIFY_CAMPAIGN_YIELD_SECONDS`` (1 s) and then goes on, so a lane with
  no live worker, or essential mail that never stops, slows a campaign but never stops it;
* nothing is claimed while it waits, and what the relay already accepted is recorded first:
  a waiting campaign holds no message, no stale check and no unrecorded send;
* Redis and RabbitMQ brokers are read, once per group: ``LLEN`` of the lane's list, or a
  passive declare of the lane's queue (its ready messages, as ``LLEN``; unacknowledged ones
  are being sent already). On the SQL broker, and on a worker that also serves ``essential``
  (it would wait for itself), a campaign never waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from kombu.connection import Connection

from notify.config import Settings
from notify.queues import Queue

log = logging.getLogger(__name__)
STEP_SECONDS = 0.02  # how often a waiting campaign looks again
WARN_EVERY_SECONDS = 60.0  # an unreadable broker is logged at most this often


class EssentialFirst:
    """Waits while the broker holds essential messages, up to ``longest`` seconds a call."""

    def __init__(
        self,
        waiting: Callable[[], int],
        longest: float,
        unreadable: tuple[type[BaseException], ...] = (redis.RedisError,),
    ) -> None:
        self._waiting = waiting
        self.longest = longest
        self._unreadable = unreadable  # what reading the broker raises when it cannot
        self._warned_at = float("-inf")

    def busy(self) -> bool:
        """One reading: do essential messages wait now? (A broker that cannot be read: no.)"""
        if self.longest <= 0:
            return False
        try:
            return self._waiting() > 0
        except self._unreadable as error:
            if time.monotonic() - self._warned_at > WARN_EVERY_SECONDS:
                self._warned_at = time.monotonic()
                log.warning("campaign: essential lane not readable: %s", type(error).__name__)
            return False

    def give_way(self, *, until: float | None = None) -> float:
        """Return once no essential message waits, ``longest`` has passed or ``until``
        (monotonic) comes; the seconds spent waiting. A broker that cannot be read counts as
        nothing waiting: a campaign never stops for it."""
        start = time.monotonic()
        end = start + self.longest
        if until is not None:
            end = min(end, until)
        while True:
            busy = self.busy()
            now = time.monotonic()
            if not busy or now + STEP_SECONDS > end:
                return now - start
            time.sleep(STEP_SECONDS)


def never_waits() -> EssentialFirst:
    return EssentialFirst(lambda: 0, 0.0)


def for_worker(settings: Settings, *, consumed: set[str]) -> EssentialFirst:
    """What a worker consuming ``consumed`` does: wait while the broker's ``essential`` lane
    holds messages (Redis or RabbitMQ) when it does not serve that lane itself, else never."""
    longest = settings.campaign_yield_seconds
    if longest <= 0 or Queue.ESSENTIAL.value in consumed or not consumed:
        return never_waits()
    if settings.broker_is_redis:
        client = redis.Redis.from_url(
            settings.broker_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        return EssentialFirst(lambda: int(client.llen(Queue.ESSENTIAL.value)), longest)
    if settings.broker_is_rabbitmq:
        connection = Connection(settings.broker_url, connect_timeout=1.0)  # type: ignore[no-untyped-call]
        unreadable = (*connection.connection_errors, *connection.channel_errors, OSError)
        return EssentialFirst(lambda: _ready_on_rabbitmq(connection), longest, unreadable)
    return never_waits()


def _ready_on_rabbitmq(connection: Connection) -> int:
    """Messages ready on the essential queue, by a passive declare on a channel of its own
    (a failed declare closes its channel, never the connection's others)."""
    connection.ensure_connection(max_retries=1)  # type: ignore[no-untyped-call]
    with connection.channel() as channel:  # type: ignore[no-untyped-call]
        declared = channel.queue_declare(queue=Queue.ESSENTIAL.value, passive=True)
    return int(declared.message_count)
