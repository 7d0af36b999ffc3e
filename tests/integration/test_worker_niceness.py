"""``NOTIFY_WORKER_NICENESS``: a bulk worker started with it runs every process at that niceness,
so on a shared host a campaign takes only the CPU the web and the essential worker leave."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.services import WorkerProcess
from tests.support.stack import Stack


def _pool_and_main_pids(main_pid: int) -> list[int]:
    """The worker's main process and its children, read from /proc."""
    children = Path(f"/proc/{main_pid}/task/{main_pid}/children").read_text().split()
    return [main_pid, *(int(pid) for pid in children)]


def test_a_worker_started_with_a_niceness_runs_its_pool_at_it_and_others_are_left_alone(
    stack: Stack, tmp_path: Path
) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    niced = WorkerProcess(
        {**stack.env, "NOTIFY_WORKER_NICENESS": "7"}, tmp_path / "bulk.log", "bulk", beat=False
    )
    plain = WorkerProcess(stack.env, tmp_path / "essential.log", "essential", beat=False)
    niced.start()
    plain.start()
    try:
        assert niced.process is not None and plain.process is not None
        niced_pids = _pool_and_main_pids(niced.process.pid)
        plain_pids = _pool_and_main_pids(plain.process.pid)
        assert len(niced_pids) == 3 and len(plain_pids) == 3  # main and two pool processes
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in niced_pids} == {min(own + 7, 19)}
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in plain_pids} == {own}
    finally:
        niced.stop()
        plain.stop()
