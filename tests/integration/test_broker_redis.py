"""notify's Redis transport on a real Redis (the main tier's broker): one redis-py client per
channel and connection pool, and a new one once the pool is new."""

from __future__ import annotations

import uuid

import pytest

from notify.celery_app import create_celery
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def test_a_channel_reuses_its_client_until_its_pool_is_made_again(stack: Stack) -> None:
    # A queue of this test's own on the broker the worker uses: nothing else is touched.
    app = create_celery(stack.settings)
    queue_name = f"client-reuse-{uuid.uuid4().hex[:8]}"
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        queue = connection.SimpleQueue(queue_name, channel=channel)
        try:
            with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
                assert first is second and first.connection_pool is channel.pool
            queue.put("before")
            with channel.conn_or_acquire() as after_publish:
                assert after_publish is first  # a publish made no client of its own
            channel._disconnect_pools()  # what kombu does after a fork or when the broker goes
            with channel.conn_or_acquire() as renewed:
                assert renewed is not first and renewed.connection_pool is channel.pool
            queue.put("after")
            assert [queue.get(timeout=2).payload for _ in range(2)] == ["before", "after"]
        finally:
            queue.queue.delete()
            queue.close()
