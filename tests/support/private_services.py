"""Services a fault test may kill: a Redis server, a RabbitMQ node and a PostgreSQL cluster of
the test's own, on spare loopback ports, with their data in a temporary folder.

They are started and stopped by PID only, so a test never touches the machine's shared
PostgreSQL (5432) or Redis (6379).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.services import free_port, wait_until

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivateRedis:
    """``redis-server`` on 127.0.0.1:<spare port>, nothing kept on disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed; the fault tests need it")
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        wait_until(self._answers, 10, f"the private Redis on port {self.port}")

    def _answers(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: the server vanishes with whatever it held in memory."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.kill()


RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # not the wrapper: it would su


class PrivateRabbitMQ:
    """A RabbitMQ node of its own: its own node name, AMQP and distribution ports on loopback,
    data and logs in ``folder`` (kept across a kill, as a real node's disk is), no plugins, and
    none of the machine node's configuration. Started in a process group of its own and killed
    only through it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.node = f"notifytest{self.port}@localhost"
        self.process: subprocess.Popen[bytes] | None = None
        home = folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(f"notifytest{os.urandom(8).hex()}")
            cookie.chmod(0o400)
        (folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (folder / "enabled_plugins").write_text("[].\n")
        (folder / "rabbitmq-env.conf").write_text("")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        if not RABBITMQ_SERVER.exists():
            pytest.fail(f"{RABBITMQ_SERVER} is missing; the RabbitMQ fault test needs it")
        env = {
            **os.environ,
            "HOME": str(self.folder / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "data"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        log = (self.folder / "rabbitmq.out").open("ab")
        self.process = subprocess.Popen(
            [str(RABBITMQ_SERVER)], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_until(self._answers, 60, f"the private RabbitMQ node on port {self.port}", 0.3)

    def _answers(self) -> bool:
        from kombu import Connection

        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"the private RabbitMQ node exited: {self.folder / 'rabbitmq.out'}")
        try:
            with Connection(self.url, connect_timeout=1) as connection:
                connection.ensure_connection(max_retries=1)
            return True
        except Exception:
            return False

    def kill(self) -> None:
        """SIGKILL to the node's process group: the node and its helpers vanish at once."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.kill()


class PrivatePostgres:
    """A PostgreSQL cluster of its own (``initdb`` as the postgres user, trust auth), in a
    folder of its own under the system temporary folder (pytest's folders are private to
    root, and the server runs as postgres)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="notify-postgres-"))
        self.folder.chmod(0o755)
        self.data = self.folder / "pgdata"
        self.port = free_port()
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/notify"

    def _as_postgres(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        done = self._as_postgres(
            str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"initdb failed: {done.stderr[-2000:]}")
        self.start()
        created = self._as_postgres(
            str(POSTGRES_BIN.parent / "bin" / "createdb"), "-h", "127.0.0.1", "-p",
            str(self.port), "-U", "postgres", "notify",
        )  # fmt: skip
        if created.returncode != 0:
            pytest.fail(f"createdb failed: {created.stderr[-2000:]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = self._as_postgres(
            str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.folder / "postgres.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"pg_ctl start failed: {done.stderr[-2000:]}{done.stdout[-2000:]}")
        self.started = True

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash as far as clients are concerned: connections just drop."""
        if not self.started:
            return
        self._as_postgres(
            str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
        )
        self.started = False

    def destroy(self) -> None:
        self.stop()
        time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)
