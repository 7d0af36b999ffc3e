"""The web app under faults: uncomputable ranges, unstorable data, a database that does not
answer, the mailbox seen from the network, what reaches the log, and bodies that never end.

Self-contained: each test builds its own app on SQLite files and the SQL broker in a temporary
folder (or on a PostgreSQL URL where nothing listens), and no worker. It uses none of the shared
fixtures (``stack``, ``client``, ...), so it can run next to the rest of the suite.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.message.templates import get_template
from notify.message.tokens import preferences_token, unsubscribe_token
from notify.migrate import upgrade
from notify.models import ConsentEvent, Recipient
from notify.people import recipients
from notify.producers.api_keys import SCOPES, create_key
from notify.web.app import create_app
from tests.support.services import free_port

ADDRESS = "leak.victim@example.com"
API_LIMIT = 32_768
BULK_LIMIT = 1_048_576
CHUNK = 65_536


@dataclass
class Embedded:
    settings: Settings
    app: FastAPI
    key: str
    public_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _settings(folder: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{folder / 'notify.sqlite'}",
        "broker_url": f"sqla+sqlite:///{folder / 'broker.sqlite'}",
        "smtp_url": f"file://{folder / 'mailbox'}",
        "max_body_bytes": API_LIMIT,
        "max_import_bytes": BULK_LIMIT,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    settings = _settings(tmp_path)
    upgrade(settings.database_url)
    engine = open_database(settings)
    with make_session_factory(engine).begin() as session:
        _, key = create_key(session, "faults", SCOPES)
        person, _ = recipients.upsert(
            session, "u-ada", email="ada@example.com", hash_key=settings.hash_key
        )
        public_id = person.public_id
    engine.dispose()
    yield Embedded(settings, create_app(settings), key, public_id)


@pytest.fixture
def client(embedded: Embedded) -> Iterator[TestClient]:
    with TestClient(embedded.app, raise_server_exceptions=False) as test_client:
        yield test_client


def post_json(client: TestClient, path: str, raw: str, auth: dict[str, str]) -> Any:
    headers = {**auth, "Content-Type": "application/json"}
    return client.post(path, content=raw.encode("utf-8", "surrogatepass"), headers=headers)


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the app logged, messages and arguments (the test's own HTTP client's log, httpx,
    is left out: it prints the URLs the test asks for)."""
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    return "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in records)


def locs(response: Any) -> list[list[Any]]:
    return [problem["loc"] for problem in response.json()["detail"]]


# --- 1. stats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("to=0001-01-01", ["query", "to"]),
        ("from=0001-01-01", ["query", "from"]),
        ("from=9999-12-31", ["query", "from"]),
        ("to=9999-12-31", ["query", "to"]),
        ("from=0001-01-01&to=9999-12-31", ["query", "from"]),
        ("from=2026-05-02&to=2026-05-01", ["query", "from"]),
        ("from=2020-01-01&to=2026-01-01", ["query", "from"]),
    ],
)
def test_a_stats_range_that_cannot_be_computed_is_a_422_naming_the_field(
    embedded: Embedded, client: TestClient, query: str, loc: list[str]
) -> None:
    response = client.get(f"/v1/stats?{query}", headers=embedded.auth)
    assert response.status_code == 422, response.text
    assert locs(response) == [loc]


def test_a_stats_range_that_can_be_computed_still_answers(
    embedded: Embedded, client: TestClient
) -> None:
    assert client.get("/v1/stats", headers=embedded.auth).status_code == 200
    ok = client.get("/v1/stats?from=2026-01-01&to=2026-01-31", headers=embedded.auth)
    assert ok.status_code == 200 and ok.json()["from"] == "2026-01-01"


# --- 2. data that cannot be stored ------------------------------------------------------------


def _notification(data_fragment: str) -> str:
    sample = json.dumps(get_template("security_alert").sample)[1:-1]
    return (
        '{"template": "security_alert", "user_id": "u-ada", "email": "ada@example.com", '
        f'"data": {{{sample}, {data_fragment}}}}}'
    )


@pytest.mark.parametrize(
    ("fragment", "loc"),
    [
        ('"x": "\\ud800"', ["body", "data", "x"]),
        ('"\\ud800": "x"', ["body", "data", "\\ud800"]),
        ('"x": {"y": ["\\udfff"]}', ["body", "data", "x", "y", "0"]),
        ('"x": NaN', ["body", "data", "x"]),
        ('"x": Infinity', ["body", "data", "x"]),
        ('"x": [-Infinity]', ["body", "data", "x", "0"]),
        ('"x": "a\\u0000b"', ["body", "data", "x"]),
        ('"a\\u0000b": 1', ["body", "data", "a\\x00b"]),
        ('"x": {"y": {"z": "\\u0000"}}', ["body", "data", "x", "y", "z"]),
    ],
)
def test_notification_data_that_cannot_be_stored_is_a_422_with_its_path(
    embedded: Embedded, client: TestClient, fragment: str, loc: list[str]
) -> None:
    response = post_json(client, "/v1/notifications", _notification(fragment), embedded.auth)
    assert response.status_code == 422, response.text
    assert locs(response) == [loc]


def test_campaign_data_that_cannot_be_stored_is_a_422_with_its_path(
    embedded: Embedded, client: TestClient
) -> None:
    sample = json.dumps(get_template("product_update").sample)[1:-1]
    for fragment, loc in (
        ('"x": "\\ud800"', ["body", "data", "x"]),
        ('"x": NaN', ["body", "data", "x"]),
        ('"x": "\\u0000"', ["body", "data", "x"]),
    ):
        raw = f'{{"name": "c", "template": "product_update", "data": {{{sample}, {fragment}}}}}'
        response = post_json(client, "/v1/campaigns", raw, embedded.auth)
        assert response.status_code == 422, response.text
        assert locs(response) == [loc]


def test_an_import_rejects_the_bad_lines_by_number_and_imports_the_others(
    embedded: Embedded, client: TestClient
) -> None:
    lines = [
        '{"user_id": "u-1", "email": "one@example.com"}',
        '{"user_id": "u-2", "email": "two@example.com", "locale": "\\ud800"}',
        '{"user_id": "u-3", "email": "three@example.com", "\\udc00": 1}',
        '{"user_id": NaN, "email": "four@example.com"}',
        '{"user_id": "u-5\\ud800", "email": "five@example.com"}',
        '{"user_id": "u-6", "email": "six@example.com"}',
    ]
    response = client.post(
        "/v1/users/import",
        content="\n".join(lines).encode("utf-8"),
        headers={**embedded.auth, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["imported"], result["rejected"]) == (2, 4)
    errors = {error["line"]: error["error"] for error in result["errors"]}
    assert errors[2].startswith("locale: ")
    assert errors[3].startswith("field name '\\udc00'")
    assert errors[4].startswith("user_id: ")
    assert errors[5].startswith("user_id: ")
    engine = open_database(embedded.settings)
    with make_session_factory(engine)() as session:
        ids = set(session.scalars(select(Recipient.user_id)))
    engine.dispose()
    assert {"u-1", "u-6"} <= ids and not ids & {"nan", "u-2", "u-3"}


def test_a_malformed_address_in_the_path_is_a_list_form_422(
    embedded: Embedded, client: TestClient
) -> None:
    response = client.delete("/v1/suppressions/not-an-address", headers=embedded.auth)
    assert response.status_code == 422
    assert locs(response) == [["path", "email"]]


# --- 3 and 6. the database does not answer ----------------------------------------------------


@pytest.fixture
def down(tmp_path: Path) -> Iterator[TestClient]:
    settings = _settings(
        tmp_path, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/notify"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


SECRET = "nfy_" + "S3cr3tKeyThatMustNeverBeLogged0123456789abc"
UNSUBSCRIBE = unsubscribe_token(Settings().secret_key_list, "pub-leak", "product_updates")
PREFERENCES = preferences_token(Settings().secret_key_list, "pub-leak")
API_CALLS = [
    ("DELETE", f"/v1/suppressions/{ADDRESS}", None),
    ("POST", "/v1/suppressions", {"email": ADDRESS}),
    ("POST", "/v1/suppressions/reports", {"email": ADDRESS, "type": "complaint"}),
    ("GET", f"/v1/users/{ADDRESS}", None),
    ("PUT", f"/v1/users/{ADDRESS}", {"email": ADDRESS}),
    ("GET", f"/v1/users/{ADDRESS}/preferences", None),
    ("GET", f"/v1/users/{ADDRESS}/export", None),
    ("DELETE", f"/v1/users/{ADDRESS}", None),
    ("GET", f"/v1/stats?from=2026-01-01&to=2026-01-02&x={ADDRESS}", None),
]
PAGE_CALLS = [
    ("GET", f"/u/{UNSUBSCRIBE}", None),
    ("HEAD", f"/u/{UNSUBSCRIBE}", None),
    ("POST", f"/u/{UNSUBSCRIBE}", None),
    ("POST", f"/u/{UNSUBSCRIBE}/undo", None),
    ("GET", f"/preferences/{PREFERENCES}", None),
    ("POST", f"/preferences/{PREFERENCES}", None),
    ("POST", f"/preferences?email={ADDRESS}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), API_CALLS)
def test_the_api_answers_503_with_retry_after_when_the_database_is_down(
    down: TestClient, method: str, path: str, body: Any
) -> None:
    headers = {"Authorization": f"Bearer {SECRET}"}
    response = down.request(method, path, json=body, headers=headers)
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert "database" in response.json()["detail"]


def _page_call_id(call: tuple[str, str, Any]) -> str:
    """A test id without the tokens: a preference token holds its signing time, and every
    pytest-xdist process must collect the same ids."""
    method, path, _ = call
    return f"{method} " + path.replace(UNSUBSCRIBE, "<token>").replace(PREFERENCES, "<token>")


@pytest.mark.parametrize(("method", "path", "body"), PAGE_CALLS, ids=map(_page_call_id, PAGE_CALLS))
def test_the_public_pages_answer_a_503_page_when_the_database_is_down(
    down: TestClient, method: str, path: str, body: Any
) -> None:
    data = {"email": ADDRESS} if path.startswith("/preferences?") else None
    response = down.request(method, path.split("?")[0], data=data)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-store"
    if method != "HEAD":
        assert "try again" in response.text


def test_readyz_says_which_part_is_down(down: TestClient) -> None:
    response = down.get("/readyz")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    # The schema cannot be read while the database is down: not known to be at head, and not
    # blamed either (no advice to migrate).
    assert body["checks"] == {"database": False, "broker": True, "migrations": False}
    assert body["down"] == ["database"]
    assert "database" in body["detail"] and "broker" not in body["detail"]
    assert "upgrade" not in body["detail"]
    assert down.get("/healthz").status_code == 200  # the process itself is alive


def test_no_address_token_or_key_reaches_the_log_on_any_route(
    down: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for method, path, body in API_CALLS:
        down.request(method, path, json=body, headers={"Authorization": f"Bearer {SECRET}"})
    for method, path, _ in PAGE_CALLS:
        email = {"email": ADDRESS} if path.startswith("/preferences?") else None
        down.request(method, path.split("?")[0], data=email)
    logged = server_log(caplog)
    assert "unavailable" in logged and "/v1/suppressions/{email}" in logged
    assert "/u/{token}" in logged and "/preferences/{token}" in logged
    for secret in (ADDRESS, "leak.victim", SECRET, UNSUBSCRIBE, PREFERENCES, "pub-leak"):
        assert secret not in logged, secret


def test_an_unhandled_error_logs_the_route_and_frames_but_no_value(
    embedded: Embedded,
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from notify.people import suppressions

    def broken(*_: Any, **__: Any) -> bool:
        raise RuntimeError(f"cannot lift {ADDRESS}")

    monkeypatch.setattr(suppressions, "lift", broken)
    caplog.set_level(logging.DEBUG)
    response = client.delete(f"/v1/suppressions/{ADDRESS}", headers=embedded.auth)
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; it has been logged"}
    logged = server_log(caplog)
    assert "unhandled RuntimeError on DELETE /v1/suppressions/{email}" in logged
    assert "broken" in logged  # the frames are there for whoever debugs it
    assert ADDRESS not in logged and "leak.victim" not in logged


def test_an_unmatched_path_is_logged_masked() -> None:
    from notify.web.errors import loggable_path

    scope = {"type": "http", "method": "GET", "path": f"/nowhere/{ADDRESS}/{SECRET}/x"}
    assert loggable_path(scope) == "/nowhere/l***@example.com/[long]/x"
    assert loggable_path({**scope, "path": f"/u/{UNSUBSCRIBE}/what"}) == "/u/[token]/what"


class _SilentServer:
    """Accepts TCP connections and never says a word, as a hung database host would."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = int(self.socket.getsockname()[1])

    def close(self) -> None:
        self.socket.close()


def test_a_database_that_accepts_but_never_answers_gives_503_within_the_connect_timeout(
    tmp_path: Path,
) -> None:
    server = _SilentServer()
    try:
        settings = _settings(
            tmp_path,
            database_url=f"postgresql://postgres@127.0.0.1:{server.port}/notify",
            database_connect_timeout_seconds=2,
        )
        with TestClient(create_app(settings), raise_server_exceptions=False) as silent:
            started = time.monotonic()
            response = silent.get("/v1/templates", headers={"Authorization": f"Bearer {SECRET}"})
            elapsed = time.monotonic() - started
    finally:
        server.close()
    assert response.status_code == 503
    assert elapsed < 10, f"took {elapsed:.1f}s"


# --- 5. the mailbox pages, loopback only ------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [("127.0.0.1", 200), ("127.0.0.9", 200), ("::1", 200), ("203.0.113.5", 404), ("10.1.2.3", 404)],
)
def test_the_mailbox_is_served_to_loopback_clients_only(
    embedded: Embedded, host: str, status: int
) -> None:
    base = "http://127.0.0.1:8000"
    with TestClient(embedded.app, client=(host, 50_000), base_url=base) as test_client:
        assert test_client.get("/dev/mailbox").status_code == status
        assert test_client.get("/dev/mailbox/x.eml/raw").status_code == 404


def test_the_mailbox_refuses_a_loopback_request_addressed_to_another_name(
    embedded: Embedded,
) -> None:
    """DNS rebinding: a page on evil.example points its name at 127.0.0.1 and asks for the
    mailbox from the developer's browser; the Host header gives it away."""
    rebound = "http://evil.example:8000"
    with TestClient(embedded.app, client=("127.0.0.1", 50_000), base_url=rebound) as client:
        assert client.get("/dev/mailbox").status_code == 404


# --- 7. bodies: authentication first, and a limit while they stream ---------------------------


@dataclass
class Upload:
    """An ASGI request body of ``total`` bytes, sent as repeats of ``piece`` (``CHUNK`` bytes
    unless given), each made only when the app reads it."""

    total: int
    piece: bytes = b"x" * CHUNK
    consumed: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def receive(self) -> dict[str, Any]:
        if self.consumed >= self.total:
            return {"type": "http.disconnect"}
        size = min(len(self.piece), self.total - self.consumed)
        self.consumed += size
        return {
            "type": "http.request",
            "body": self.piece[:size],
            "more_body": self.consumed < self.total,
        }

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(next(m for m in self.sent if m["type"] == "http.response.start")["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return dict(start["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def call(
    app: FastAPI,
    method: str,
    path: str,
    upload: Upload,
    headers: dict[str, str] | None = None,
    length: bool = False,
) -> Upload:
    """Drive the app as a server would, with a chunked body (no Content-Length) unless
    ``length``; returns the upload, which knows how much of itself was read."""
    raw = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    if length:
        raw.append((b"content-length", str(upload.total).encode()))
    else:
        raw.append((b"transfer-encoding", b"chunked"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 40_000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    anyio.run(app, scope, upload.receive, upload.send)
    return upload


HUGE = 50 * 1024 * 1024


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer nfy_unknown-key"},
    ],
    ids=["no-header", "no-secret", "other-scheme", "unknown-key"],
)
def test_an_unauthenticated_post_is_401_before_any_body_byte_is_read(
    embedded: Embedded, headers: dict[str, str]
) -> None:
    upload = call(embedded.app, "POST", "/v1/notifications", Upload(HUGE), headers)
    assert upload.status == 401
    assert upload.consumed == 0
    assert upload.headers[b"www-authenticate"] == b"Bearer"
    assert upload.headers[b"connection"] == b"close"


@pytest.mark.parametrize(
    "path", ["/v1/notifications", "/v1/users/u-ada", "/v1/suppressions", "/v1/campaigns"]
)
def test_a_streamed_api_body_over_the_limit_is_413_and_read_no_further(
    embedded: Embedded, path: str
) -> None:
    method = "PUT" if path.startswith("/v1/users/") else "POST"
    headers = {**embedded.auth, "Content-Type": "application/json"}
    limit = BULK_LIMIT if path == "/v1/campaigns" else API_LIMIT
    upload = call(embedded.app, method, path, Upload(HUGE), headers)
    assert upload.status == 413
    assert upload.consumed <= limit + CHUNK
    assert str(limit) in json.loads(upload.body)["detail"]
    assert upload.headers[b"connection"] == b"close"


def test_a_declared_length_over_the_limit_is_413_at_once(embedded: Embedded) -> None:
    headers = {**embedded.auth, "Content-Type": "application/json"}
    upload = call(embedded.app, "POST", "/v1/notifications", Upload(HUGE), headers, length=True)
    assert upload.status == 413
    assert upload.consumed == 0


def test_the_import_has_its_own_larger_limit(embedded: Embedded) -> None:
    headers = {**embedded.auth, "Content-Type": "text/csv"}
    refused = call(embedded.app, "POST", "/v1/users/import", Upload(HUGE), headers)
    assert refused.status == 413
    assert refused.consumed <= BULK_LIMIT + CHUNK
    line = b"u-bulk,bulk@example.com\n"
    within = Upload(len(line) * 20_000, piece=line * (CHUNK // len(line)))
    accepted = call(embedded.app, "POST", "/v1/users/import", within, headers)
    assert within.total > API_LIMIT
    assert accepted.status == 200, accepted.body


def test_a_one_click_post_over_the_limit_still_unsubscribes_without_reading_it_all(
    embedded: Embedded,
) -> None:
    """RFC 8058: any body unsubscribes. The body is read no further than the limit."""
    keys = embedded.settings.secret_key_list
    path = f"/u/{unsubscribe_token(keys, embedded.public_id, 'product_updates')}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    upload = call(embedded.app, "POST", path, Upload(HUGE), headers)
    assert upload.status == 200
    assert upload.consumed <= API_LIMIT + CHUNK
    engine = open_database(embedded.settings)
    with make_session_factory(engine)() as session:
        actions = list(session.scalars(select(ConsentEvent.action)))
    engine.dispose()
    assert actions == ["unsubscribed"]


@pytest.mark.parametrize("target", ["undo", "preferences", "request-link"])
def test_the_public_pages_stop_reading_at_the_limit_and_change_nothing(
    embedded: Embedded, target: str
) -> None:
    keys = embedded.settings.secret_key_list
    path = {
        "undo": f"/u/{unsubscribe_token(keys, embedded.public_id, 'product_updates')}/undo",
        "preferences": f"/preferences/{preferences_token(keys, embedded.public_id)}",
        "request-link": "/preferences",
    }[target]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    upload = call(embedded.app, "POST", path, Upload(HUGE), headers)
    assert upload.status == 413
    assert upload.consumed <= API_LIMIT + CHUNK
    engine = open_database(embedded.settings)
    with make_session_factory(engine)() as session:
        events = session.scalar(select(func.count()).select_from(ConsentEvent))
    engine.dispose()
    assert events == 0


def test_a_small_body_with_a_key_still_goes_through(embedded: Embedded) -> None:
    body = _notification('"x": 1').encode()
    upload = Upload(len(body), piece=body)
    headers = {**embedded.auth, "Content-Type": "application/json"}
    assert call(embedded.app, "POST", "/v1/notifications", upload, headers).status == 202
