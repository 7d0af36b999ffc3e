"""The broker (Redis, or a RabbitMQ node) is SIGKILLed and restarted while security alerts
flow: nothing is lost, nothing is delivered twice, and the worker process rides it out on its
own."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy import func, select

from notify.models import Notification, NotificationStatus
from tests.faults.conftest import FaultStack
from tests.support.services import wait_until
from tests.support.stack import sample_data

TRIALS = 6
DOWN_SECONDS = 2.0
UP_SECONDS = 2.5


def _post_alerts(stack: FaultStack, stop: threading.Event, sent: list[str]) -> None:
    number = 0
    while not stop.is_set():
        address = f"alert-{number}@example.com"
        response = stack.client.post(
            "/v1/notifications",
            json={
                "template": "security_alert",
                "user_id": f"alert-{number}",
                "email": address,
                "data": sample_data("security_alert"),
            },
            headers=stack.auth,
        )
        assert response.status_code == 202, response.text
        sent.append(address)
        number += 1
        time.sleep(1 / 80)


def test_redis_killed_six_times_under_load_loses_nothing_and_sends_nothing_twice(
    broker_fault_stack: FaultStack,
) -> None:
    stack = broker_fault_stack
    assert stack.redis is not None
    _kill_under_load(stack, stack.redis.kill, stack.redis.start, TRIALS)


def test_rabbitmq_killed_three_times_under_load_loses_nothing_and_sends_nothing_twice(
    rabbitmq_fault_stack: FaultStack,
) -> None:
    stack = rabbitmq_fault_stack
    assert stack.rabbitmq is not None
    _kill_under_load(stack, stack.rabbitmq.kill, stack.rabbitmq.start, 3)


def _kill_under_load(
    stack: FaultStack, kill: Callable[[], None], start: Callable[[], None], trials: int
) -> None:
    assert stack.worker.process is not None
    worker_pid = stack.worker.process.pid
    stop = threading.Event()
    addresses: list[str] = []
    producer = threading.Thread(target=_post_alerts, args=(stack, stop, addresses))
    producer.start()
    try:
        time.sleep(UP_SECONDS)
        for _ in range(trials):
            kill()
            time.sleep(DOWN_SECONDS)
            start()
            time.sleep(UP_SECONDS)
    finally:
        stop.set()
        producer.join(timeout=60)

    def all_ended() -> bool:
        assert stack.worker.process is not None and stack.worker.process.poll() is None, (
            "the worker exited:\n" + stack.worker.log_text()[-3000:]
        )
        with stack.sessions() as session:
            open_rows = session.scalar(
                select(func.count()).where(Notification.status.in_(NotificationStatus.in_flight()))
            )
        return open_rows == 0

    try:
        wait_until(all_ended, 120, "every notification to leave queued/sending")
    except BaseException:
        print(stack.worker.log_text()[-6000:])  # what the worker was doing meanwhile
        raise
    with stack.sessions() as session:
        statuses = Counter(session.scalars(select(Notification.status)).all())
    assert statuses == {NotificationStatus.SENT: len(addresses)}, statuses
    with stack.smtp.handler.lock:
        deliveries = Counter(a for m in stack.smtp.handler.received for a in m.rcpt_tos)
    assert set(deliveries) == set(addresses)
    duplicates = {address: n for address, n in deliveries.items() if n > 1}
    assert duplicates == {}, f"{len(duplicates)} delivered more than once"
    assert stack.worker.process is not None and stack.worker.process.poll() is None, (
        "the worker exited:\n" + stack.worker.log_text()[-3000:]
    )
    assert stack.worker.process.pid == worker_pid
    assert len(addresses) > 200
    assert "Connection to broker lost" in stack.worker.log_text()  # the faults did happen
