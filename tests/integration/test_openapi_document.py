"""What ``/openapi.json`` says, and that the API does as it says: every status an operation can
answer is documented with its body, every 422 is the list form, and the rules the document
states (an address is never empty, a preferences change names a category, the stats range, the
import's content types and size, ``limit``) are the ones the API applies.

Self-contained: one app per module on SQLite files and the SQL broker in a temporary folder,
and no worker. It uses none of the shared fixtures (``stack``, ``client``, ...), so it can run
next to the rest of the suite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError

from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.message.templates import get_template
from notify.migrate import upgrade
from notify.privacy import stats
from notify.producers.api_keys import SCOPES, create_key
from notify.web.app import create_app
from notify.web.errors import install_error_handlers
from notify.web.responses import ProblemsOut
from notify.web.routes.imports import FORMATS
from notify.web.routes.privacy_api import DAY_PATTERN

API_LIMIT = 32_768
IMPORT_LIMIT = 1_048_576
EVERY_V1_OPERATION_ANSWERS = {"401", "403", "413", "422", "503"}
ERROR = "#/components/schemas/ErrorOut"
PROBLEMS = "#/components/schemas/ProblemsOut"


@dataclass
class Api:
    client: TestClient
    auth: dict[str, str]
    document: dict[str, Any]

    def operations(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for path, methods in self.document["paths"].items():
            for method, operation in methods.items():
                yield method.upper(), path, operation


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("openapi-document")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'notify.sqlite'}",
        broker_url=f"sqla+sqlite:///{folder / 'broker.sqlite'}",
        smtp_url=f"file://{folder / 'mailbox'}",
        max_body_bytes=API_LIMIT,
        max_import_bytes=IMPORT_LIMIT,
    )
    upgrade(settings.database_url)
    engine = open_database(settings)
    with make_session_factory(engine).begin() as session:
        _, key = create_key(session, "openapi", SCOPES)
    engine.dispose()
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        document = client.get("/openapi.json").json()
        yield Api(client, {"Authorization": f"Bearer {key}"}, document)


def body_schema(response: dict[str, Any]) -> Any:
    return response["content"]["application/json"]["schema"]


def problems(response: Any) -> list[list[Any]]:
    """The ``loc`` of each problem of a 422, which must be the documented list form."""
    assert response.status_code == 422, response.text
    return [problem.loc for problem in ProblemsOut.model_validate(response.json()).detail]


# --- every status, with its body ----------------------------------------------------------------


def test_every_v1_operation_documents_401_403_413_422_and_503_with_their_bodies(
    api: Api,
) -> None:
    v1 = [(method, path, op) for method, path, op in api.operations() if path.startswith("/v1")]
    assert len(v1) >= 20
    for method, path, operation in v1:
        responses = operation["responses"]
        missing = EVERY_V1_OPERATION_ANSWERS - set(responses)
        assert not missing, f"{method} {path} does not document {sorted(missing)}"
        assert body_schema(responses["422"]) == {"$ref": PROBLEMS}, (method, path)
        for status in EVERY_V1_OPERATION_ANSWERS - {"422"}:
            assert body_schema(responses[status]) == {"$ref": ERROR}, (method, path, status)
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]


def test_each_error_status_beyond_the_shared_ones_is_documented_where_it_is_answered(
    api: Api,
) -> None:
    def statuses(method: str, path: str) -> set[str]:
        return set(api.document["paths"][path][method.lower()]["responses"])

    assert {"202", "400", "404", "409"} <= statuses("POST", "/v1/notifications")
    assert {"200", "201", "400", "409"} <= statuses("PUT", "/v1/users/{user_id}")
    assert {"200", "201", "400"} <= statuses("POST", "/v1/suppressions")
    assert {"204", "404"} <= statuses("DELETE", "/v1/suppressions/{email}")
    assert {"200", "415"} <= statuses("POST", "/v1/users/import")
    for action in ("schedule", "pause", "resume", "cancel"):
        assert {"404", "409"} <= statuses("POST", f"/v1/campaigns/{{campaign_id}}/{action}")
    assert {"200", "413"} <= statuses("GET", "/healthz")
    assert {"200", "413", "503"} <= statuses("GET", "/readyz")
    schemas = api.document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas, "FastAPI's 422 shape is not the one we answer"


def test_statuses_the_api_answers_are_the_documented_ones(api: Api) -> None:
    def documented(method: str, path: str, status: int) -> None:
        assert str(status) in api.document["paths"][path][method.lower()]["responses"]

    answers = [
        ("GET", "/v1/users/{user_id}", api.client.get("/v1/users/nobody")),
        ("GET", "/v1/users/{user_id}", api.client.get("/v1/users/nobody", headers=api.auth)),
        (
            "POST",
            "/v1/notifications",
            api.client.post(
                "/v1/notifications",
                content=b'{"template": "\xff"}',
                headers={**api.auth, "Content-Type": "application/json"},
            ),
        ),
        (
            "POST",
            "/v1/users/import",
            api.client.post("/v1/users/import", content=b"x", headers=api.auth),
        ),
        (
            "PUT",
            "/v1/users/{user_id}",
            api.client.put(
                "/v1/users/u-big",
                content=b" " * (API_LIMIT + 1),
                headers={**api.auth, "Content-Type": "application/json"},
            ),
        ),
    ]
    assert [response.status_code for *_, response in answers] == [401, 404, 400, 415, 413]
    for method, path, response in answers:
        documented(method, path, response.status_code)
        assert isinstance(response.json()["detail"], str)


# --- every 422 is the list form -----------------------------------------------------------------


def test_a_value_the_database_refuses_is_a_list_form_422() -> None:
    app = FastAPI()

    @app.post("/refused")
    def refused() -> None:
        raise DataError("INSERT ...", {}, Exception("invalid byte sequence"))

    install_error_handlers(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert problems(client.post("/refused")) == [["body"]]


def test_every_kind_of_422_is_the_list_form(api: Api) -> None:
    user = "/v1/users/u-forms"
    assert api.client.put(user, json={"email": "a@example.com"}, headers=api.auth).is_success
    refused = {
        "unknown field": api.client.put(user, json={"email": "a@x.com", "x": 1}, headers=api.auth),
        "our own check": api.client.patch(
            f"{user}/preferences", json={"security": False}, headers=api.auth
        ),
        "stats range": api.client.get("/v1/stats?from=2026-05-02&to=2026-05-01", headers=api.auth),
        "path": api.client.delete("/v1/suppressions/not-an-address", headers=api.auth),
        "import not UTF-8": api.client.post(
            "/v1/users/import", content=b"\xff", headers={**api.auth, "Content-Type": "text/csv"}
        ),
        "limit given true": api.client.get("/v1/campaigns?limit=true", headers=api.auth),
    }
    for what, response in refused.items():
        assert problems(response), what


# --- what the document allows the API accepts, and what the API refuses the document says -----


def test_an_empty_address_is_refused_by_the_document_and_the_api(api: Api) -> None:
    schemas = api.document["components"]["schemas"]
    for model in ("UserIn", "SuppressionIn", "ReportIn"):
        assert schemas[model]["properties"]["email"]["minLength"] == 1, model
    email = api.document["paths"]["/v1/suppressions/{email}"]["delete"]["parameters"][0]
    assert email["schema"]["minLength"] == 1
    refused = api.client.put("/v1/users/u-empty", json={"email": ""}, headers=api.auth)
    assert problems(refused) == [["body", "email"]]


def test_a_special_use_domain_is_refused_by_the_document_and_the_api(api: Api) -> None:
    pattern = api.document["components"]["schemas"]["UserIn"]["properties"]["email"]["pattern"]
    assert re.search(pattern, "ada@example.test") is None
    assert re.search(pattern, "ada@example.com") is not None
    refused = api.client.put("/v1/users/u-test", json={"email": "a@b.test"}, headers=api.auth)
    assert problems(refused) == [["body", "email"]]


def test_an_empty_preferences_change_is_refused_by_the_document_and_the_api(api: Api) -> None:
    operation = api.document["paths"]["/v1/users/{user_id}/preferences"]["patch"]
    schema = body_schema(operation["requestBody"])
    assert schema["minProperties"] == 1 and schema["additionalProperties"] is False
    assert schema["properties"]["security"]["const"] is True
    assert schema["properties"]["product_updates"] == {
        "type": "boolean",
        "description": "Product updates",
    }
    user = "/v1/users/u-prefs"
    assert api.client.put(user, json={"email": "p@example.com"}, headers=api.auth).is_success
    assert problems(api.client.patch(f"{user}/preferences", json={}, headers=api.auth))
    assert api.client.patch(
        f"{user}/preferences", json={"security": True}, headers=api.auth
    ).is_success


def test_the_stats_days_are_bounded_in_the_document_as_in_the_api(api: Api) -> None:
    parameters = api.document["paths"]["/v1/stats"]["get"]["parameters"]
    assert {p["name"]: p["schema"]["pattern"] for p in parameters} == {
        "from": DAY_PATTERN,
        "to": DAY_PATTERN,
    }
    day = stats.EARLIEST - timedelta(days=3)
    while day <= stats.LATEST + timedelta(days=3):
        inside = stats.EARLIEST <= day <= stats.LATEST
        assert (re.fullmatch(DAY_PATTERN, day.isoformat()) is not None) is inside, day
        day += timedelta(days=1)
    for text in ("2001-02-29", "2100-02-29", "2026-04-31", "2026-1-1", "946684800"):
        assert re.fullmatch(DAY_PATTERN, text) is None, text
    last = stats.LATEST.isoformat()
    assert api.client.get(f"/v1/stats?from={last}&to={last}", headers=api.auth).status_code == 200
    for query, loc in (
        ("from=1999-12-31", ["query", "from"]),
        (f"to={date(2100, 1, 2)}", ["query", "to"]),
        ("from=2026-01-01T00:00:00", ["query", "from"]),
        ("to=946684800", ["query", "to"]),
    ):
        assert problems(api.client.get(f"/v1/stats?{query}", headers=api.auth)) == [loc], query


def test_the_import_documents_each_content_type_it_reads_and_its_size(api: Api) -> None:
    operation = api.document["paths"]["/v1/users/import"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == set(FORMATS)
    for media, schema in content.items():
        assert schema["schema"] == {"type": "string", "maxLength": IMPORT_LIMIT // 4}, media
    assert str(IMPORT_LIMIT) in operation["requestBody"]["description"]
    assert str(IMPORT_LIMIT) in operation["responses"]["413"]["description"]
    lines = {
        "csv": b"u-csv,csv@example.com\n",
        "jsonl": b'{"user_id": "u-j", "email": "j@x.com"}\n',
    }
    for media, kind in FORMATS.items():
        answer = api.client.post(
            "/v1/users/import", content=lines[kind], headers={**api.auth, "Content-Type": media}
        )
        assert answer.status_code == 200 and answer.json()["imported"] == 1, (media, answer.text)
    too_large = api.client.post(
        "/v1/users/import",
        content=b"x" * (IMPORT_LIMIT + 1),
        headers={**api.auth, "Content-Type": "text/csv"},
    )
    assert too_large.status_code == 413
    unread = api.client.post(
        "/v1/users/import", content=b"x", headers={**api.auth, "Content-Type": "text/plain"}
    )
    assert unread.status_code == 415


def test_each_413_names_the_limit_of_its_operation(api: Api) -> None:
    for method, path, operation in api.operations():
        bulk = (method, path) in {("POST", "/v1/users/import"), ("POST", "/v1/campaigns")}
        limit = IMPORT_LIMIT if bulk else API_LIMIT
        if "413" in operation["responses"]:
            assert f" {limit} bytes" in operation["responses"]["413"]["description"], path


def test_a_limit_given_true_is_refused_by_the_document_and_the_api(api: Api) -> None:
    parameters = api.document["paths"]["/v1/campaigns"]["get"]["parameters"]
    assert next(p for p in parameters if p["name"] == "limit")["schema"]["type"] == "integer"
    assert problems(api.client.get("/v1/campaigns?limit=true", headers=api.auth)) == [
        ["query", "limit"]
    ]
    for limit in ("0", "1", "100000"):  # an integer out of 1..500 is brought within it
        assert api.client.get(f"/v1/campaigns?limit={limit}", headers=api.auth).status_code == 200


def test_times_of_a_campaign_are_refused_by_the_document_and_the_api_alike(api: Api) -> None:
    campaign = api.document["components"]["schemas"]["CampaignIn"]["properties"]
    aware = campaign["send_at"]["anyOf"][0]["pattern"]
    local = campaign["send_at_local"]["anyOf"][0]["pattern"]
    assert re.fullmatch(aware, "2026-12-01T10:00:00Z") and re.fullmatch(local, "2026-12-01T10:00")
    assert re.fullmatch(aware, "2026-12-01T10:00Z")  # seconds are optional, as they always were
    minutes_only = api.client.post(
        "/v1/campaigns",
        json={"name": "n", "template": "product_update", "send_at": "2026-12-01T10:00Z",
              "data": dict(get_template("product_update").sample)},
        headers=api.auth,
    )  # fmt: skip
    assert minutes_only.status_code == 201, minutes_only.text
    for field, value, pattern in (
        ("send_at", "2026-12-01T10:00:00", aware),
        ("send_at", 1_700_000_000, aware),
        ("send_at", "1999-12-31T23:59:59Z", aware),
        ("send_at_local", "2026-12-01T10:00Z", local),
        ("send_at_local", "2026-02-30T10:00", local),
        ("send_at_local", "2026-12-01 10:00", local),
    ):
        assert not isinstance(value, str) or re.fullmatch(pattern, value) is None, value
        body = {"name": "n", "template": "product_update", field: value}
        refused = api.client.post("/v1/campaigns", json=body, headers=api.auth)
        assert problems(refused) == [["body", field]], value


def test_a_user_id_with_whitespace_is_refused_the_same_way_by_the_document_and_the_api(
    api: Api,
) -> None:
    pattern = api.document["components"]["schemas"]["NotificationIn"]["properties"]["user_id"]
    for character in ("\x85", "\u00a0", "\u2028", "\u3000", "\t", " "):
        assert re.fullmatch(pattern["pattern"], f"u{character}1") is None, hex(ord(character))
        response = api.client.get(f"/v1/users/{quote(f'u{character}1')}", headers=api.auth)
        assert problems(response) == [["path", "user_id"]], hex(ord(character))
    assert re.fullmatch(pattern["pattern"], "u-\ufeff1")  # not White_Space: a user id may hold it


# --- 405 names every method of the path --------------------------------------------------------


def test_a_method_a_path_does_not_take_is_405_naming_the_documented_methods(api: Api) -> None:
    for path, url in (
        ("/v1/users/{user_id}", "/v1/users/u-1"),
        ("/v1/suppressions/reports", "/v1/suppressions/reports"),
        ("/v1/campaigns", "/v1/campaigns"),
    ):
        answer = api.client.options(url, headers=api.auth)
        assert answer.status_code == 405
        allowed = {method.strip() for method in answer.headers["allow"].split(",")} - {"HEAD"}
        assert allowed == {method.upper() for method in api.document["paths"][path]}, path
    deleted = api.client.delete("/v1/suppressions/reports", headers=api.auth)
    assert deleted.status_code == 405 and deleted.headers["allow"] == "POST"
