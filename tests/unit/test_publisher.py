"""The web's publisher: ids published in groups off the request path, each exactly once."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Sequence

from notify.delivery.publisher import GroupPublisher


class SlowBroker:
    """Takes a while per publish, as a broker round trip does; records every group."""

    def __init__(self, seconds: float, refuse_after: int | None = None) -> None:
        self.seconds = seconds
        self.groups: list[list[tuple[str, str]]] = []
        self.refuse_after = refuse_after
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[tuple[str, str]]) -> int:
        time.sleep(self.seconds)
        with self.lock:
            if self.refuse_after is not None and len(self.groups) >= self.refuse_after:
                raise ConnectionError("broker down")
            self.groups.append(list(items))
        return len(items)


def test_what_arrives_while_the_broker_is_busy_is_published_together() -> None:
    broker = SlowBroker(0.01)
    publisher = GroupPublisher(broker, batch_size=50, linger=0.002)
    submitted = [(f"id-{n}", "security") for n in range(300)]
    for notification_id, category in submitted:
        publisher.submit(notification_id, category)
    publisher.close()
    published = [item for group in broker.groups for item in group]
    assert published == submitted  # each once, in order
    assert max(len(group) for group in broker.groups) == 50
    assert len(broker.groups) < 300 / 5


def test_a_lone_message_is_published_without_waiting_for_company() -> None:
    """After a quiet spell a message goes at once, however long ``linger`` is."""
    broker = SlowBroker(0.0)
    publisher = GroupPublisher(broker, batch_size=50, linger=10.0)
    publisher.submit("alone", "security")
    deadline = time.monotonic() + 5  # half the linger
    while not broker.groups and time.monotonic() < deadline:
        time.sleep(0.001)
    assert broker.groups == [[("alone", "security")]]
    publisher.close()


def test_a_stream_is_published_at_most_once_per_linger_in_groups() -> None:
    """One message every 5 ms for about half a second, with a linger of 100 ms: the first goes
    alone, the rest in a few groups, no two publishes closer than the linger. (A slow machine
    only makes the gaps longer and the groups bigger.)"""
    published_at: list[float] = []

    def broker(items: Sequence[tuple[str, str]]) -> int:
        published_at.append(time.monotonic())
        groups.append(list(items))
        return len(items)

    groups: list[list[tuple[str, str]]] = []
    publisher = GroupPublisher(broker, batch_size=50, linger=0.1)
    submitted = [(f"id-{n}", "security") for n in range(100)]
    for notification_id, category in submitted:
        publisher.submit(notification_id, category)
        time.sleep(0.005)
    publisher.close()
    assert [item for group in groups for item in group] == submitted  # each once, in order
    assert groups[0] == [submitted[0]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(published_at)]
    assert all(gap >= 0.1 for gap in gaps[:-1]), gaps  # the last one is close()'s
    assert len(groups) < 100 / 5


def test_a_failing_publish_does_not_stop_the_publisher() -> None:
    broker = SlowBroker(0.0, refuse_after=1)
    publisher = GroupPublisher(broker, batch_size=1, linger=0.0)
    publisher.submit("first", "security")
    publisher.submit("refused", "security")
    publisher.close()
    assert broker.groups == [[("first", "security")]]
    broker.refuse_after = None
    publisher.submit("later", "security")  # a new thread after close
    publisher.close()
    assert broker.groups == [[("first", "security")], [("later", "security")]]


def test_a_forked_child_starts_its_own_thread_and_does_not_inherit_the_parents_items() -> None:
    broker = SlowBroker(0.0)
    publisher = GroupPublisher(broker, batch_size=10, linger=0.0)
    publisher.submit("parent", "security")
    publisher.close()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: publish one of its own, report what it published
        publisher.submit("child", "security")
        publisher.close()
        os.write(write, repr(broker.groups[1:]).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert os.read(read, 1000).decode() == "[[('child', 'security')]]"
    os.close(read)


def test_a_refused_publish_leaves_what_is_waiting_to_the_sweeper() -> None:
    class RefusingBroker(SlowBroker):
        def __call__(self, items: Sequence[tuple[str, str]]) -> int:
            time.sleep(self.seconds)
            self.groups.append(list(items))
            return 0  # the broker took nothing

    broker = RefusingBroker(0.05)
    publisher = GroupPublisher(broker, batch_size=10, linger=0.0)
    for n in range(200):
        publisher.submit(f"id-{n}", "security")
    publisher.close()
    assert len(broker.groups) < 10  # not twenty waits on a broker that is down
