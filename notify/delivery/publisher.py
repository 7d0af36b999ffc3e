"""Publishing send tasks off the request path, many ids to a task.

A web request commits its notification and hands ``(id, category)`` to a :class:`GroupPublisher`;
the answer does not wait for the broker. A thread of the publisher's own publishes what has
arrived as one task per lane (up to ``batch_size`` ids a task). It publishes at most once every
``linger`` seconds unless a full group of ``batch_size`` is waiting: a message that comes after
a quiet spell goes out at once, alone; in a stream, what arrives within ``linger`` of the last
publish waits for the next and goes out with the others. A message so waits at most ``linger``
seconds plus the publishes ahead of it, and a worker gets a few tasks of many ids instead of one
task per message: each task has a fixed cost (the task itself, a claim, a commit) that a stream
of one-id tasks pays per message.

What this trades, exactly: a notification accepted (202) but not yet published when the web
process dies stays ``queued`` in the database and is published by the sweeper once it has been
due for ``NOTIFY_SWEEP_QUEUED_AFTER_SECONDS``: later, never lost. A broker that refuses the
publish leads to the same path.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

PublishSends = Callable[[Sequence[tuple[str, str]]], int]
"""``publish_sends([(notification_id, category), …])``: how many ids the broker took."""
_STOP = None
CLOSE_TIMEOUT_SECONDS = 5.0


class GroupPublisher:
    """Publishes send tasks from a background thread, in groups; thread-safe.

    The thread starts on the first :meth:`submit` in a process (also after a fork) and ends on
    :meth:`close`, which publishes what is still waiting.
    """

    def __init__(self, publish_sends: PublishSends, *, batch_size: int, linger: float) -> None:
        self._publish_sends = publish_sends
        self.batch_size = batch_size
        self.linger = linger
        self._waiting: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._owner_pid = 0
        self._lock = threading.Lock()
        self._published_at = -math.inf  # time.monotonic() of the last publish

    def submit(self, notification_id: str, category: str) -> None:
        """Publish the send task for a committed notification soon; never blocks on the broker."""
        self._ensure_thread()
        self._waiting.put((notification_id, category))

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Publish what is waiting, then stop the thread (waits at most ``timeout`` seconds)."""
        with self._lock:
            thread = self._thread if self._owner_pid == os.getpid() else None
            self._thread = None
        if thread is not None:
            self._waiting.put(_STOP)
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        if self._running():
            return
        with self._lock:
            if not self._running():
                if self._owner_pid != os.getpid():  # forked: the parent's items are not ours
                    self._waiting = queue.SimpleQueue()
                self._owner_pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="notify-publisher", daemon=True
                )
                self._thread.start()

    def _running(self) -> bool:
        thread = self._thread
        return thread is not None and self._owner_pid == os.getpid() and thread.is_alive()

    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            if first is _STOP:
                return
            group, stopping = self._gather(first)
            stop_dropped = self._publish(group)
            self._published_at = time.monotonic()
            if stop_dropped or stopping:
                return

    def _gather(self, first: tuple[str, str]) -> tuple[list[tuple[str, str]], bool]:
        """``first``, what is waiting, and what arrives until ``linger`` after the last publish
        (nothing more if that time has passed), up to ``batch_size``; and whether a stop came
        in meanwhile."""
        group = [first]
        deadline = self._published_at + self.linger
        while len(group) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._waiting.get(timeout=remaining)
                    if remaining > 0
                    else self._waiting.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP:
                return group, True
            group.append(item)
        return group, False

    def _publish(self, group: list[tuple[str, str]]) -> bool:
        """Publish ``group``; when the broker refuses, drop what is waiting too (the sweeper
        publishes those rows), so a broker outage never grows this queue. Returns whether a
        stop was among the dropped items."""
        try:
            published = self._publish_sends(group)  # logs a refusal itself
        except Exception as error:  # the thread must outlive any error; the sweeper has the rows
            log.error(
                "publishing %d notification(s) failed, the sweeper will retry: %s",
                len(group),
                type(error).__name__,
            )
            published = 0
        if published >= len(group):
            return False
        dropped, stopping = 0, False
        while True:
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stopping = True
            else:
                dropped += 1
        if dropped:
            log.warning("broker refused a publish: %d waiting left to the sweeper", dropped)
        return stopping
