"""``notify dev`` (what ``make run`` starts): web, worker and beat on the embedded default.

What it guarantees:

- An address and port that cannot be listened on are reported in one line, with how to choose
  another (``make run PORT=…``), before anything is migrated or started.
- The development key has every scope. It is kept in ``<state dir>/dev-api-key`` (mode 0600)
  and the next run reuses it while it still authenticates with every scope; otherwise (revoked,
  a new database, a scope added since) a new key replaces it.
- Ctrl-C, SIGTERM and SIGHUP stop web, worker and beat, also when the shell handed SIGINT down
  as ignored. Each child gets SIGTERM and shuts down on its own (uvicorn closes; the worker
  finishes what it holds, then stops its pool and beat); whatever is left of a child's process
  group after ``STOP_GRACE_SECONDS``, or after a second stop signal, gets SIGKILL.
- On Linux the kernel sends each child SIGTERM when ``notify dev`` dies, however it dies
  (``PR_SET_PDEATHSIG``), so no web server or worker lives on without it.

Relative paths (the default ``var/…`` URLs) are taken from the repository root, for this
process and its children alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from notify.config import Settings, load_settings_or_exit
from notify.db import SessionFactory
from notify.queues import ALL_QUEUES

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = ROOT / "var"
KEY_FILE_NAME = "dev-api-key"
KEY_NAME = "notify dev"
STOP_GRACE_SECONDS = 20.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


# --- before anything starts ---------------------------------------------------------------------


def url_host(host: str) -> str:
    """The host to write in URLs for a listening address: loopback for a wildcard address,
    brackets around an IPv6 one."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (compared, not bound)
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on right now, in one line with a hint, or None.

    Binds a socket the way uvicorn does (``SO_REUSEADDR``) and closes it at once, so a port
    held by a listening process is refused and one left in TIME_WAIT is not."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return (
            f"cannot listen on {host!r}: {error.strerror}; choose another address with "
            "`make run HOST=127.0.0.1` (or `notify dev --host 127.0.0.1`)"
        )
    family, kind, protocol, _, address = found[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            other = port + 1 if port < 65535 else 8001
            if error.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use; choose another with "
                    f"`make run PORT={other}` (or `notify dev --port {other}`)"
                )
            if error.errno == errno.EACCES:
                return (
                    f"not allowed to listen on port {port}; choose one above 1023 with "
                    "`make run PORT=8000` (or `notify dev --port 8000`)"
                )
            return (
                f"cannot listen on {host}: {error.strerror}; choose another address with "
                "`make run HOST=127.0.0.1` (or `notify dev --host 127.0.0.1`)"
            )
    return None


def _prepare_sql_broker(broker_url: str) -> None:
    """Put the embedded broker's SQLite file in WAL mode before any child opens it: the switch
    needs the file to itself, and worker, beat and web would otherwise race for it on a first
    run (one of them failing with "database is locked")."""
    if not broker_url.startswith("sqla+sqlite"):
        return
    from notify.db import make_engine

    engine = make_engine(broker_url.removeprefix("sqla+"))
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


# --- the development key ------------------------------------------------------------------------


def _read_key(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def _write_private(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` with mode 0600 from its first byte on; the file is replaced
    whole (a reader never sees half a key)."""
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # a leftover partial file may have had another mode
        os.write(descriptor, f"{secret}\n".encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(partial, path)


def development_key(sessions: SessionFactory, path: Path) -> tuple[str, bool]:
    """The development key and whether it was reused.

    The key in ``path`` is reused if it authenticates in this database with every scope of
    :data:`notify.producers.api_keys.SCOPES`; its file is then set to mode 0600. Otherwise a
    new key with every scope is made (a stored key that lacks a scope is revoked) and written
    to ``path`` (mode 0600) before its transaction commits, so a key that could not be saved is
    not kept either.
    """
    from notify.producers.api_keys import SCOPES, authenticate, create_key, revoke

    stored = _read_key(path)
    with sessions.begin() as session:
        if stored is not None:
            caller = authenticate(session, stored)
            if caller is not None and caller.scopes >= SCOPES:
                path.chmod(0o600)
                return stored, True
            if caller is not None:
                revoke(session, caller.key_id)
        _, secret = create_key(session, KEY_NAME, SCOPES)
        _write_private(path, secret)
    return secret, False


# --- the children -------------------------------------------------------------------------------


def web_command(python: str, port: int, settings: Settings, host: str = "127.0.0.1") -> list[str]:
    """uvicorn as ``notify web`` runs it, on ``host`` (loopback unless asked): h11 with the
    request head bounded by ``NOTIFY_MAX_HEADER_BYTES`` (see ``notify.cli.app.uvicorn_limits``),
    no access log."""
    return [
        python,
        "-m",
        "uvicorn",
        "--factory",
        "notify.web.app:app_from_environment",
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
        "--http",
        "h11",
        "--h11-max-incomplete-event-size",
        str(settings.max_header_bytes),
    ]


def worker_command(python: str, schedule: Path) -> list[str]:
    """One Celery worker on every queue with beat embedded, its schedule kept in ``schedule``."""
    return [
        python,
        "-m",
        "celery",
        "-A",
        "worker",
        "worker",
        "-B",
        "-Q",
        ",".join(ALL_QUEUES),
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
        "--schedule",
        str(schedule),
    ]


def _die_with(parent: int) -> Callable[[], None]:
    """What a child runs between fork and exec: ask the kernel for SIGTERM when its parent
    dies (Linux), and exit at once if the parent is already gone."""

    def arrange() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arrange


class StopSignal(BaseException):
    """A stop signal (SIGINT, SIGTERM or SIGHUP) arrived while the children were running."""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _say(line: str) -> None:
    """One line on stderr; nothing if stderr is gone (SIGHUP after the terminal closed)."""
    with contextlib.suppress(OSError):
        sys.stderr.write(f"notify dev: {line}\n")
        sys.stderr.flush()


class Children:
    """The child processes of one ``notify dev``, each the leader of a session of its own (so a
    terminal's Ctrl-C reaches only ``notify dev``, which stops them in order)."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self.hurry = False

    def on_signal(self, number: int, _frame: FrameType | None) -> None:
        """The handler for STOP_SIGNALS: the first raises StopSignal; one during the stop
        makes :meth:`stop` kill what is left at once."""
        if self.stopping:
            self.hurry = True
            return
        raise StopSignal(signal.Signals(number).name)

    def start(self, command: list[str]) -> None:
        self.processes.append(
            subprocess.Popen(  # noqa: S603 (our own argv)
                command, cwd=ROOT, start_new_session=True, preexec_fn=_die_with(os.getpid())
            )
        )

    def running(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM each child (the child alone: it stops its own pool), wait until each child's
        process group is empty, SIGKILL what is left after ``grace`` seconds or at once after
        another stop signal. Returns when every child has been reaped."""
        self.stopping = True
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes:
            while _group_alive(process.pid) and time.monotonic() < deadline and not self.hurry:
                process.poll()  # reap the leader so its group can empty
                time.sleep(0.1)
            if _group_alive(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_health(url: str, children: Children, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not children.running():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _shown(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when it is inside it, else absolute."""
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _banner(base: str, host: str, secret: str, reused: bool, key_file: str, mailbox: str) -> str:
    from notify.web.routes.mailbox import is_loopback

    body = (
        '{"template": "security_alert", "user_id": "u-42", "email": "ada@example.com", '
        '"data": {"first_name": "Ada", "event": "New sign-in", '
        '"occurred_at": "just now", "location": "your laptop"}}'
    )
    lines = [
        "",
        "notify is running on the embedded default (SQLite, SQL broker, local mailbox).",
        f"  API key:   {secret}  ({'the same as last time' if reused else 'new'}; every scope)",
        f"  key file:  {key_file} (the next run reuses it): export KEY=$(cat {key_file})",
        "  send one:  curl -s -X POST " + f"{base}/v1/notifications "
        f"-H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' "
        f"-d '{body}'",
        f"  mailbox:   {base}/dev/mailbox" + (f"  (files in {mailbox})" if mailbox else ""),
        f"  API docs:  {base}/docs",
    ]
    if not is_loopback(host):
        lines.append(f"  listening on {host}: /dev/mailbox answers loopback clients only")
    lines += ["Ctrl-C stops web, worker and beat.", ""]
    return "\n".join(lines)


def run_dev(port: int, host: str = "127.0.0.1", state_dir: Path | None = None) -> int:
    """Check the port, migrate, find or make the key, start the children, print where to look,
    and stop them all on a stop signal. Returns the exit code: 0 after a stop signal, 1 if a
    child did not start or ended on its own, 2 if the port cannot be listened on."""
    from notify.db import make_session_factory, open_database
    from notify.migrate import upgrade

    problem = port_problem(host, port)
    if problem is not None:
        _say(problem)
        return 2
    state = (state_dir or DEFAULT_STATE_DIR).resolve()
    key_file = state / KEY_FILE_NAME
    shown_key_file = _shown(key_file, Path.cwd())
    os.chdir(ROOT)
    base = f"http://{url_host(host)}:{port}"
    os.environ.setdefault("NOTIFY_PUBLIC_URL", base)
    settings = load_settings_or_exit()
    state.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    _prepare_sql_broker(settings.broker_url)
    engine = open_database(settings)
    try:
        secret, reused = development_key(make_session_factory(engine), key_file)
    finally:
        engine.dispose()

    children = Children()
    # SIGINT too: a shell that starts us in the background hands SIGINT down as ignored.
    previous = {number: signal.signal(number, children.on_signal) for number in STOP_SIGNALS}
    try:
        children.start(web_command(sys.executable, port, settings, host))
        children.start(worker_command(sys.executable, state / "celerybeat-schedule"))
        if not _wait_for_health(f"{base}/readyz", children, timeout=60):
            _say("the web server or worker did not start; see above")
            return 1
        mailbox = str(settings.smtp.mailbox) if settings.smtp.is_mailbox else ""
        banner = _banner(base, host, secret, reused, shown_key_file, mailbox)
        print(banner, flush=True)  # noqa: T201 (this banner is the command's output)
        while children.running():
            time.sleep(0.5)
        children.stopping = True
        _say("a child process ended; stopping the rest")
        return 1
    except StopSignal as stop:
        children.stopping = True
        _say(f"{stop} received; stopping web, worker and beat")
        return 0
    finally:
        children.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
