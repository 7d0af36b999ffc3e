"""What both benchmarks need: tools from Debian, child processes, Redis db 12, CPU accounting.

The PostgreSQL database, free ports and polling come from ``tests/support/services.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):  # pool children may outlive the leader
            os.killpg(pgid, signal.SIGKILL)
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
    between counts up to its last sample (every 0.25 s); children we reaped can be added to
    ``reaped`` from ``getrusage``.
    """

    groups: dict[str, int] = field(default_factory=dict)
    _before: dict[tuple[int, int], _Proc] = field(default_factory=dict)
    _seen: dict[tuple[int, int], _Proc] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None
    _machine_before: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, float] = field(default_factory=dict)
    _wall_before: float = 0.0
    result: dict[str, float] = field(default_factory=dict)
    reaped: dict[str, float] = field(default_factory=dict)  # children that ended, by rusage
    wall: float = 0.0

    def start(self) -> None:
        self._before = _processes()
        self._seen = dict(self._before)
        self._machine_before = _machine()
        self._wall_before = time.monotonic()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="cpu-meter", daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        # Short-lived processes (a PostgreSQL backend for a new connection) would be missed by
        # two snapshots: keep the last value seen of every process, four times a second.
        while not self._stop.wait(0.25):
            self._seen.update(_processes())

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
        self._seen.update(_processes())
        after = self._seen
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


# --- profiling with py-spy -----------------------------------------------------------------


def py_spy() -> str | None:
    """py-spy from this virtualenv (``.venv/bin/pip install py-spy``), or None."""
    tool = Path(venv_tool("py-spy"))
    return str(tool) if tool.exists() else shutil.which("py-spy")


def start_py_spy(
    pid: int, seconds: float, out: Path, *, subprocesses: bool, mode: str = "--gil", rate: int = 200
) -> Child | None:
    """``py-spy record`` of ``pid`` (and its children) as collapsed stacks.

    ``mode`` ``--gil`` samples only the thread holding the GIL (CPU spent in Python), ``--idle``
    samples every thread whatever it does (wall time). Stops after ``seconds`` or on SIGINT.
    """
    tool = py_spy()
    if tool is None:
        say("py-spy is not installed (.venv/bin/pip install py-spy); no profile taken")
        return None
    command = [
        tool, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", str(rate), "--format", "raw", "--nonblocking", mode, "-o", str(out),
    ]  # fmt: skip
    if subprocesses:
        command.append("--subprocesses")
    return Child("py-spy", command, None, out.with_suffix(".log")).start()


def stop_py_spy(spy: Child, timeout: float = 60) -> None:
    """Ask py-spy to write what it has (SIGINT) and wait for it."""
    assert spy.process is not None
    if spy.process.poll() is None:
        spy.process.send_signal(signal.SIGINT)
    try:
        spy.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        spy.stop(timeout=5)
    spy.process = None


_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame_name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        if path.startswith(str(ROOT)):
            path = path[len(str(ROOT)) + 1 :]
    return f"{match.group('function')} ({path})"


def profile_summary(
    raw: Path,
    *,
    inclusive_filter: Callable[[str], bool],
    top: int,
    rate: int,
    units: int,
    unit: str,
    within: str | None = None,
) -> list[str]:
    """Text summary of py-spy collapsed stacks: top inclusive frames and top self frames.

    Each sample stands for ``1/rate`` s, so a frame's samples over ``units`` (requests or
    messages) give milliseconds per unit. With ``within``, only stacks through that frame count.
    """
    total = 0
    self_counts: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if not frame.startswith(("process ", "thread "))]
        if not frames or (within is not None and within not in frames):
            continue
        total += count
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return ["    (no samples)"]
    per = 1000 / rate / max(units, 1)
    lines = [
        f"    {total} samples at {rate}/s{f' under {within}' if within else ''}; "
        f"share of those, and ms per {unit} ({units} {unit}s):"
    ]
    chosen = sorted(
        ((count, frame) for frame, count in inclusive.items() if inclusive_filter(frame)),
        reverse=True,
    )
    lines += [
        f"      {100 * count / total:5.1f}%  {count * per:7.3f} ms  {frame}"
        for count, frame in chosen[:top]
    ]
    lines.append("    self (innermost frame):")
    hottest = sorted(((count, frame) for frame, count in self_counts.items()), reverse=True)
    lines += [
        f"      {100 * count / total:5.1f}%  {count * per:7.3f} ms  {frame}"
        for count, frame in hottest[:top]
    ]
    return lines


# --- campaign and unsubscribe benchmarks: users, the sink's counter, worker memory ----------


def user_lines(count: int, prefix: str = "bench-user") -> Iterable[str]:
    """CSV lines ``user_id,email,locale,timezone`` for ``count`` distinct users (no header)."""
    for index in range(count):
        yield f"{prefix}-{index},{prefix}-{index}@example.com,en,UTC\n"


def bench_engine(settings: Any) -> Any:
    """An engine as a notify process opens it: ``notify.db.open_database`` when the package has
    it (it installs the data keys that encrypt personal columns first), else ``make_engine``."""
    from notify import db

    open_database = getattr(db, "open_database", None)
    if open_database is not None:
        return open_database(settings)
    return db.make_engine(settings.database_url)


def settings_for(env: Mapping[str, str]) -> Any:
    """``notify.config.Settings`` from the ``NOTIFY_*`` entries of ``env`` (not os.environ)."""
    from notify.config import Settings

    return Settings(
        **{
            key.removeprefix("NOTIFY_").lower(): value
            for key, value in env.items()
            if key.startswith("NOTIFY_")
        }
    )


def import_bench_users(settings: Any, count: int, *, chunk_size: int = 5000) -> tuple[float, int]:
    """``notify.people.importing.import_users`` of ``count`` generated users; (seconds, imported).

    ``chunk_size`` rows go in one INSERT ... ON CONFLICT statement and transaction (8 bind
    parameters a row, so at most about 8,000 under PostgreSQL's 65,535-parameter limit).
    """
    from notify.db import make_session_factory
    from notify.people.importing import import_users

    engine = bench_engine(settings)
    try:
        sessions = make_session_factory(engine)
        started = time.monotonic()
        result = import_users(
            sessions, user_lines(count), "csv", hash_key=settings.hash_key, chunk_size=chunk_size
        )
        seconds = time.monotonic() - started
    finally:
        engine.dispose()
    if result.rejected:
        raise RuntimeError(f"import rejected {result.rejected} rows: {result.errors[:3]}")
    return seconds, result.imported


_MESG = re.compile(rb"mesg=(\d+)")


def sink_count(log_path: Path) -> int:
    """Messages accepted so far by ``smtp-sink -c`` (or ``bench.aiosmtpd_sink``).

    Both write ``... mesg=N`` followed by ``\\r`` after every message; only the end of the log
    is read, so polling stays cheap however many messages went through.
    """
    try:
        with log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(size - 512, 0))
            tail = log.read()
    except OSError:
        return 0
    found = _MESG.findall(tail)
    return int(found[-1]) if found else 0


def _status_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def group_pids(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (a :class:`Child` and all it forked)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


@dataclass
class RssSampler:
    """Peak memory of a process group (the Celery parent, its pool children, embedded beat).

    Every ``interval`` seconds: the sum of ``VmRSS`` over the group (what ``ps`` shows; pages
    shared after ``fork()`` count once per process), the sum of ``Pss`` (shared pages split
    between their sharers, so the group's real footprint) and the largest single ``VmRSS``.
    """

    pgid: int
    interval: float = 0.5
    peak_rss_kb: int = 0
    peak_pss_kb: int = 0
    peak_single_kb: int = 0
    peak_processes: int = 0
    samples: int = 0
    history: list[tuple[float, int, int]] = field(default_factory=list)  # (time, rss, pss) kB
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def sample(self) -> None:
        pids = group_pids(self.pgid)
        rss = [_status_kb(pid, "VmRSS") for pid in pids]
        pss = sum(_pss_kb(pid) for pid in pids)
        self.peak_rss_kb = max(self.peak_rss_kb, sum(rss))
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.peak_single_kb = max(self.peak_single_kb, max(rss, default=0))
        self.peak_processes = max(self.peak_processes, len(pids))
        self.samples += 1
        self.history.append((time.monotonic(), sum(rss), pss))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> RssSampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self

    def trend(self, points: int = 5) -> str:
        """Sum of VmRSS (and Pss) at evenly spaced samples over the sampler's life."""
        if not self.history:
            return "(no samples)"
        start = self.history[0][0]
        picks = sorted({round(i * (len(self.history) - 1) / (points - 1)) for i in range(points)})
        return ", ".join(
            f"{self.history[i][0] - start:.0f}s {self.history[i][1] / 1024:.0f}/"
            f"{self.history[i][2] / 1024:.0f} MB"
            for i in picks
        )

    def summary(self, *, peak: bool = True) -> str:
        mb, word = 1024, "peak " if peak else ""
        samples = f", {self.samples} samples every {self.interval:g} s" if peak else ""
        return (
            f"{word}sum of VmRSS {self.peak_rss_kb / mb:.0f} MB, {word}sum of Pss "
            f"{self.peak_pss_kb / mb:.0f} MB, largest single process "
            f"{self.peak_single_kb / mb:.0f} MB ({self.peak_processes} processes{samples})"
        )


def code_fingerprint() -> str:
    """A short hash of the service's code (``notify/``, ``worker.py``, ``beat_schedule.py``,
    templates), printed with each result: the package changes while benchmarks are run."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(
        [*ROOT.glob("notify/**/*.py"), *ROOT.glob("templates/**/*"), ROOT / "worker.py",
         ROOT / "beat_schedule.py"]
    )  # fmt: skip
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def report_row(
    path: str, figure: str, baseline: str, ratio: float | None, goal: str, met: bool
) -> None:
    """One row of ``make bench``'s summary table, printed as ``BENCH_ROW {json}`` for
    ``bench.summary`` to collect (and readable on its own)."""
    import json

    row = {
        "path": path,
        "figure": figure,
        "baseline": baseline,
        "ratio": None if ratio is None else round(ratio, 2),
        "goal": goal,
        "met": met,
        "code": code_fingerprint(),
    }
    print("BENCH_ROW " + json.dumps(row, ensure_ascii=False), flush=True)


def pacing_delay_ms(rate: float, connections: int) -> float:
    """wrk's per-connection pause that offers about ``rate`` requests/s over ``connections``
    connections (each waits this long after a response before its next request)."""
    return 1000.0 * connections / rate
