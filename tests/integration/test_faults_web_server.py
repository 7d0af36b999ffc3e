"""`notify web` as a real server under hostile clients: a 20 MB header line, and endless
chunked bodies with and without a key.

Self-contained: the server runs on a free port with its own environment (SQLite and the SQL
broker in a temporary folder, a mailbox folder), shares nothing with other test runs, and is
stopped by its process id. It uses none of the shared fixtures.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.migrate import upgrade
from notify.producers.api_keys import SCOPES, create_key
from tests.support.services import WebProcess

HEADER_LINE_BYTES = 20 * 1024 * 1024
ENDLESS_BYTES = 200 * 1024 * 1024
PIECE = b"x" * 65_536
CHUNK = f"{len(PIECE):x}\r\n".encode() + PIECE + b"\r\n"  # one chunk of a chunked body


@dataclass
class Server:
    process: WebProcess
    key: str

    @property
    def port(self) -> int:
        return self.process.port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("faults-web-server")
    own = {
        "NOTIFY_DATABASE_URL": f"sqlite:///{folder / 'notify.sqlite'}",
        "NOTIFY_BROKER_URL": f"sqla+sqlite:///{folder / 'broker.sqlite'}",
        "NOTIFY_SMTP_URL": f"file://{folder / 'mailbox'}",
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFY_")}
    env.update(own)
    settings = Settings(
        **{name.removeprefix("NOTIFY_").lower(): value for name, value in own.items()}
    )
    upgrade(settings.database_url)
    engine = open_database(settings)
    with make_session_factory(engine).begin() as session:
        _, key = create_key(session, "faults", SCOPES)
    engine.dispose()
    process = WebProcess(env, folder / "web.log")
    process.start()
    try:
        yield Server(process, key)
    finally:
        process.stop()


def _connect(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65_536)
    return connection


def _read_answer(connection: socket.socket, timeout: float = 10) -> bytes:
    """What the server sent before closing or going quiet (b"" if it reset the connection)."""
    connection.settimeout(timeout)
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65_536)
            if not chunk:
                break
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def _send_until_answered(connection: socket.socket, head: bytes, total: int) -> tuple[int, bytes]:
    """Send ``head``, then up to ``total`` bytes of chunked body (64 KiB chunks), stopping as
    soon as the server answers or closes; returns how many bytes went out and the answer."""
    connection.sendall(head)
    sent = 0
    pending = memoryview(CHUNK)
    connection.setblocking(False)
    try:
        while sent < total:
            readable, writable, _ = select.select([connection], [connection], [], 10)
            if readable:
                break
            if not writable:
                continue
            try:
                count = connection.send(pending)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += count
            pending = pending[count:] or memoryview(CHUNK)
    finally:
        connection.setblocking(True)
    return sent, _read_answer(connection)


def test_a_20_mb_header_line_is_refused(server: Server) -> None:
    with _connect(server.port) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ")
        sent = 0
        started = time.monotonic()
        try:
            while sent < HEADER_LINE_BYTES:
                connection.sendall(PIECE)
                sent += len(PIECE)
            connection.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_answer(connection)
    status = answer.split(b"\r\n", 1)[0]
    assert not status.startswith(b"HTTP/1.1 2"), status
    assert status.startswith(b"HTTP/1.1 4") or sent < HEADER_LINE_BYTES, (status, sent)
    assert time.monotonic() - started < 30


def test_an_ordinary_header_still_passes(server: Server) -> None:
    with _connect(server.port) as connection:
        connection.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fine: "
            + b"a" * 8_000
            + b"\r\nConnection: close\r\n\r\n"
        )
        answer = _read_answer(connection)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def _chunked_post(path: str, extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        + extra
        + b"\r\n"
    )


def test_an_endless_body_without_a_key_is_answered_401_while_it_is_still_being_sent(
    server: Server,
) -> None:
    with _connect(server.port) as connection:
        sent, answer = _send_until_answered(
            connection, _chunked_post("/v1/notifications"), ENDLESS_BYTES
        )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert sent < ENDLESS_BYTES // 10


def test_an_endless_body_with_a_key_is_answered_413_while_it_is_still_being_sent(
    server: Server,
) -> None:
    auth = f"Authorization: Bearer {server.key}\r\n".encode()
    with _connect(server.port) as connection:
        sent, answer = _send_until_answered(
            connection,
            _chunked_post("/v1/notifications", auth),
            ENDLESS_BYTES,
        )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < ENDLESS_BYTES // 10


def test_the_server_still_answers_after_all_that(server: Server) -> None:
    with _connect(server.port) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert _read_answer(connection).startswith(b"HTTP/1.1 200")


def test_the_web_log_holds_no_key(server: Server) -> None:
    log = Path(server.process.log_path).read_text(encoding="utf-8", errors="replace")
    assert server.key not in log
