"""The API against its own OpenAPI document, by schemathesis: no 5xx, no undocumented status,
content type or body, schema-valid requests accepted and schema-invalid ones refused.

A bounded run: every operation of ``/openapi.json`` gets schemathesis's examples, coverage and
fuzzing phases, in positive and negative mode, at most :data:`MAX_EXAMPLES` fuzzed cases each,
from a fixed seed, so the same cases run every time (about 30 seconds in all). Requests go in
process to an app on SQLite files and the SQL broker in a temporary folder, with no worker,
carrying a key that has every scope. It uses none of the shared fixtures (``stack``,
``client``, ...), so it can run next to the rest of the suite.

The schema is loaded when the module is imported (as ``schema.parametrize()`` needs it), from
an app that is built but never called: ``create_app`` opens no connection. The app that
answers is built per module by :func:`live`, which first checks that it serves the very same
document.

Nothing is excluded: ``/dev/mailbox`` and the public pages (``/u/...``, ``/preferences...``)
are not in the document at all, and everything in it works in process.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.migrate import upgrade
from notify.models.base import utcnow
from notify.people.user_row import MAX_ATTRIBUTES_BYTES
from notify.privacy import stats
from notify.producers.api_keys import SCOPES, create_key
from notify.web.app import create_app
from notify.web.routes.imports import FORMATS

MAX_EXAMPLES = 20  # fuzzed cases per operation and run; examples and coverage come on top
SEED = 20_260_501
JSON_LINES = [media for media, kind in FORMATS.items() if kind == "jsonl"]


def _settings(folder: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{folder / 'notify.sqlite'}",
        broker_url=f"sqla+sqlite:///{folder / 'broker.sqlite'}",
        smtp_url=f"file://{folder / 'mailbox'}",
    )


def _document() -> dict[str, Any]:
    """The OpenAPI document of an app built on settings like :func:`live`'s, never called."""
    return create_app(_settings(Path(tempfile.gettempdir()) / "notify-openapi-unused")).openapi()


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",  # positive and negative
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",  # no stored failures replayed: the same cases every run
            # The key goes in every request (see the test); a generated Authorization header
            # would only ever be refused with 401.
            "with-security-parameters": False,
        },
        # Every check is on by default; only the import gets one switched off. Its body is text
        # and nothing else: a negative body (a number, an object) reaches the server as the
        # text it is written as, which is a valid import (its bad lines are reported, 200).
        # schemathesis knows this of text/plain, not of text/csv or JSON lines.
        "operations": [
            {
                "include-path": "/v1/users/import",
                "include-method": "POST",
                "checks": {"negative_data_rejection": {"enabled": False}},
            }
        ],
    }
)


class LiveApp:
    """The ASGI app schemathesis calls (with every check's probe), known before the app that
    answers exists: it hands each request to :attr:`target`, set by :func:`live`."""

    def __init__(self) -> None:
        self.target: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.target is None:
            raise RuntimeError("the live fixture has not built the app yet")
        await self.target(scope, receive, send)


LIVE_APP = LiveApp()
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
schema.app = LIVE_APP  # as schemathesis.openapi.from_asgi does, without calling the app now


@schemathesis.serializer(*JSON_LINES)
def _json_lines(_: schemathesis.SerializationContext, value: Any) -> bytes:
    """An import body in a JSON-lines type, sent as the text it is (schemathesis sends only
    JSON, forms, XML and text/* bodies of its own)."""
    return str(value).encode("utf-8")


# --- rules a JSON Schema cannot state, kept by positive cases ----------------------------------
# The document states each parameter on its own. Two rules relate two of them, and one bounds
# a whole object's size; a positive case
# (one the document allows) that breaks one is made to keep it, so that "schema-valid requests
# are accepted" stays a strict check. Negative cases are left as generated.


def _is_positive(case: schemathesis.Case) -> bool:
    return case.meta is None or case.meta.generation.mode is schemathesis.GenerationMode.POSITIVE


def _keep_one_idempotency_key(case: schemathesis.Case) -> None:
    """``Idempotency-Key`` and the body's ``idempotency_key``, when both are given, agree."""
    header = (case.headers or {}).get("Idempotency-Key")
    if header is not None and isinstance(case.body, dict) and case.body.get("idempotency_key"):
        # A new dict: generated cases may share one, and the others are not to change.
        case.body = {**case.body, "idempotency_key": header}


def _keep_a_countable_range(case: schemathesis.Case) -> None:
    """``from`` is not after ``to`` (today when absent), and they span at most 400 days: a
    range ``notify.privacy.stats.stats_range`` refuses is made into one it takes."""
    query = case.query or {}
    start, end = query.get("from"), query.get("to")
    first = date.fromisoformat(start) if isinstance(start, str) else None
    last = date.fromisoformat(end) if isinstance(end, str) else None
    today = utcnow().date()
    try:
        stats.stats_range(first, last, today)
        return
    except stats.RangeError:
        pass
    assert first is not None  # with ``to`` alone, or neither, any range is countable
    first, last = sorted((first, last or today))
    last = min(last, first + timedelta(days=stats.MAX_DAYS - 1))
    case.query = {**query, "from": first.isoformat(), "to": last.isoformat()}


def _keep_attributes_within_their_byte_limit(case: schemathesis.Case) -> None:
    """A person's ``attributes`` are at most MAX_ATTRIBUTES_BYTES of compact JSON: the
    document states the limit in words (its pieces are each bounded), so attributes over it
    lose keys until they fit."""
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("attributes"), dict):
        return
    kept = dict(body["attributes"])

    def size() -> int:
        return len(json.dumps(kept, separators=(",", ":"), ensure_ascii=False).encode())

    while kept and size() > MAX_ATTRIBUTES_BYTES:
        kept.pop(next(reversed(kept)))
    case.body = {**body, "attributes": kept}


RELATIONS = {
    ("POST", "/v1/notifications"): _keep_one_idempotency_key,
    ("GET", "/v1/stats"): _keep_a_countable_range,
    ("PUT", "/v1/users/{user_id}"): _keep_attributes_within_their_byte_limit,
}


@schema.hook("map_case")
def _keep_relations(context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
    operation = context.operation

    keep = RELATIONS.get((operation.method.upper(), operation.path)) if operation else None
    if keep is not None and _is_positive(case):
        keep(case)
    return case


# --- the app that answers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Builds the app that answers and makes it :data:`LIVE_APP`'s target; the headers that
    carry a key with every scope."""
    settings = _settings(tmp_path_factory.mktemp("openapi"))
    upgrade(settings.database_url)
    engine = open_database(settings)
    with make_session_factory(engine).begin() as session:
        _, key = create_key(session, "openapi", SCOPES)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.get("/openapi.json").json() == schema.raw_schema, "the document drifted"
    LIVE_APP.target = app
    yield {"Authorization": f"Bearer {key}"}
    LIVE_APP.target = None


@schema.parametrize()
def test_every_operation_answers_as_its_openapi_document_says(
    case: schemathesis.Case, live: dict[str, str]
) -> None:
    case.call_and_validate(headers=live)
