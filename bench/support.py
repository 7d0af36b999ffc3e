"""What both benchmarks need: tools from Debian, child processes, Redis db 12, CPU accounting.

The PostgreSQL database, free ports and polling come from ``tests/support/services.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_REDIS_URL = "redis://127.0.0.1:6379/12"  # the tests use 11
SECRET_KEYS = "bench-only-secret"

_apt_updated = False


def say(message: str = "") -> None:
    print(message, flush=True)


def venv_tool(name: str) -> str:
    """A console script of this virtualenv (the one running us), else of ``.venv``."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return str(ROOT / ".venv" / "bin" / name)


def apt_install(package: str) -> bool:
    """``apt-get install -y package`` (after one ``apt-get update``); True if it worked."""
    global _apt_updated
    apt = shutil.which("apt-get")
    if apt is None:
        say(f"  apt-get is not available; cannot install {package}")
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        say("  running apt-get update")
        update = subprocess.run(
            [apt, "update"], env=env, capture_output=True, text=True, check=False
        )
        if update.returncode != 0:
            say(f"  apt-get update failed ({update.returncode}): {update.stderr.strip()[-300:]}")
            return False
        _apt_updated = True
    say(f"  running apt-get install -y {package}")
    install = subprocess.run(
        [apt, "install", "-y", package], env=env, capture_output=True, text=True, check=False
    )
    if install.returncode != 0:
        say(f"  apt-get install {package} failed: {install.stderr.strip()[-300:]}")
        return False
    return True


def find_or_install(binary: str, package: str, *, extra_paths: Iterable[str] = ()) -> str | None:
    """Path of ``binary`` (on PATH or at one of ``extra_paths``), installing ``package`` once."""

    def find() -> str | None:
        found = shutil.which(binary)
        if found:
            return found
        return next((path for path in extra_paths if os.access(path, os.X_OK)), None)

    found = find()
    if found is not None:
        return found
    say(f"{binary} not found: installing the Debian package {package}")
    if not apt_install(package):
        return None
    return find()


def child_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any NOTIFY_* variable, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFY_")}
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def flush_redis(url: str = BENCH_REDIS_URL) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.flushdb()
    finally:
        client.close()


@dataclass
class Child:
    """A child process in its own process group, stopped with the whole group."""

    name: str
    command: list[str]
    env: dict[str, str] | None
    log_path: Path
    cwd: Path = ROOT
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited early; its log ends:\n{self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-size:]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the group, SIGKILL what is left after ``timeout``; then reap."""
        if self.process is None:
            return
        pgid = self.process.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:  # pool children may outlive the leader for a moment
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            say(f"warning: {self.name} (pid {pgid}) did not exit after SIGKILL")
        self.process = None


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- CPU accounting ------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Proc:
    comm: str
    pgrp: int
    seconds: float


def _processes() -> dict[tuple[int, int], _Proc]:
    """Every live process by (pid, start time): its name, group and CPU seconds so far."""
    found: dict[tuple[int, int], _Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        pgrp, utime, stime, started = int(fields[2]), int(fields[11]), int(fields[12]), fields[19]
        found[(int(entry), int(started))] = _Proc(comm, pgrp, (utime + stime) / _TICKS)
    return found


_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _machine() -> dict[str, float]:
    """CPU seconds since boot by kind (``/proc/stat``), all cores together."""
    values = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return {name: int(value) / _TICKS for name, value in zip(_CPU_FIELDS, values, strict=False)}


def _busy(kinds: dict[str, float]) -> float:
    return sum(value for name, value in kinds.items() if name not in ("idle", "iowait"))


@dataclass
class CpuMeter:
    """CPU seconds used between :meth:`start` and :meth:`stop`, by group.

    ``groups`` maps a label to the process groups we started (by pgid); processes not in one
    are grouped by command name (``postgres``, ``redis-server``, ...). A process that ended in
    between is not counted (pooled connections and our children live throughout).
    """

    groups: dict[str, int] = field(default_factory=dict)
    _before: dict[tuple[int, int], _Proc] = field(default_factory=dict)
    _machine_before: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, float] = field(default_factory=dict)
    _wall_before: float = 0.0
    result: dict[str, float] = field(default_factory=dict)
    reaped: dict[str, float] = field(default_factory=dict)  # children that ended, by rusage
    wall: float = 0.0

    def start(self) -> None:
        self._before = _processes()
        self._machine_before = _machine()
        self._wall_before = time.monotonic()

    def stop(self) -> dict[str, float]:
        after = _processes()
        machine = _machine()
        self.kinds = {name: machine[name] - self._machine_before[name] for name in machine}
        busy = _busy(self.kinds)
        self.wall = time.monotonic() - self._wall_before
        by_pgid = {pgid: label for label, pgid in self.groups.items()}
        used: dict[str, float] = {}
        for key, proc in after.items():
            earlier = self._before.get(key)
            delta = proc.seconds - (earlier.seconds if earlier else 0.0)
            if delta <= 0:
                continue
            label = by_pgid.get(proc.pgrp, proc.comm)
            used[label] = used.get(label, 0.0) + delta
        for label, seconds in self.reaped.items():
            used[label] = used.get(label, 0.0) + seconds
        used["(machine, all processes)"] = busy
        self.result = used
        return used

    def others(self, show: Iterable[str], top: int = 3) -> str:
        """The biggest consumers outside ``show``, e.g. ``python3 1.2s, kworker 0.1s``."""
        skip = {*show, "(machine, all processes)"}
        rest = sorted(
            ((seconds, label) for label, seconds in self.result.items() if label not in skip),
            reverse=True,
        )
        return ", ".join(f"{label} {seconds:.2f}s" for seconds, label in rest[:top] if seconds)

    def table(self, per: int, unit: str, show: Iterable[str]) -> list[str]:
        """Lines: CPU seconds, share of the 2-core machine and ms per ``unit`` for each group."""
        cores = os.cpu_count() or 1
        lines = [f"    {'process':<28}{'CPU s':>8}{'% of machine':>14}{'ms per ' + unit:>16}"]
        named = [label for label in show if label in self.result]
        accounted = sum(self.result[label] for label in named)
        rows = [*named, "(other)", "(machine, all processes)"]
        for label in rows:
            seconds = (
                self.result["(machine, all processes)"] - accounted
                if label == "(other)"
                else self.result[label]
            )
            share = 100 * seconds / (self.wall * cores) if self.wall else 0.0
            per_unit = 1000 * seconds / per if per else 0.0
            lines.append(f"    {label:<28}{seconds:>8.2f}{share:>13.0f}%{per_unit:>16.3f}")
        others = self.others(named)
        if others:
            lines.append(f"    (other = kernel work outside processes and: {others})")
        kinds = ", ".join(
            f"{name} {seconds:.2f}" for name, seconds in self.kinds.items() if name != "idle"
        )
        lines.append(f"    (machine CPU s by kind: {kinds})")
        return lines
