"""Error messages a new user meets first: every missing template variable named, no "Value
error, " prefixes, a hint for a JSON body sent without a JSON content type, and the known
templates listed with an unknown one.

Against an app of the test's own (``own_stack``: SQLite and the SQL broker in a temporary
folder, no worker), so it shares nothing with other runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from notify.message.template_data import InvalidFieldError, InvalidFieldsError, check_data
from notify.message.templates import TemplateNotFoundError, catalogue, get_template
from notify.models import Notification
from notify.web.app import create_app
from tests.support.stack import OwnStack

KNOWN = sorted(catalogue())


@pytest.fixture
def own_client(own_stack: OwnStack) -> Iterator[TestClient]:
    with TestClient(create_app(own_stack.settings), raise_server_exceptions=False) as test_client:
        yield test_client


def stored(own_stack: OwnStack) -> int:
    with own_stack.sessions() as session:
        return session.query(Notification).count()


def messages(response: Any) -> list[str]:
    return [problem["msg"] for problem in response.json()["detail"]]


# --- every missing variable ---------------------------------------------------------------


def test_check_data_names_every_missing_variable_in_the_templates_order() -> None:
    template = get_template("security_alert")
    with pytest.raises(InvalidFieldsError) as raised:
        check_data(template, {"first_name": "Ada"}, 16_384)
    problems = raised.value.problems
    assert [problem.loc for problem in problems] == [
        ("data", "event"),
        ("data", "occurred_at"),
        ("data", "location"),
    ]
    assert all(problem.msg == "is required by template security_alert" for problem in problems)
    # One line for a message that has room for one (the command line prints loc and msg).
    assert raised.value.loc == ("data",)
    assert (
        raised.value.msg
        == "lacks event, occurred_at, location (required by template security_alert)"
    )


def test_one_missing_variable_is_a_plain_field_error() -> None:
    data = {**get_template("security_alert").sample}
    del data["location"]
    with pytest.raises(InvalidFieldError) as raised:
        check_data(get_template("security_alert"), data, 16_384)
    assert type(raised.value) is InvalidFieldError
    assert raised.value.problems == (raised.value,)
    assert raised.value.loc == ("data", "location")


def test_a_missing_url_is_named_once_and_a_bad_one_beside_the_missing_ones() -> None:
    template = get_template("product_update")
    with pytest.raises(InvalidFieldsError) as raised:
        check_data(template, {"first_name": "Ada"}, 16_384)
    locs = [problem.loc[-1] for problem in raised.value.problems]
    assert locs == ["headline", "summary", "cta_url", "cta_label"]
    with pytest.raises(InvalidFieldsError) as mixed:
        check_data(template, {"first_name": "Ada", "cta_url": "http://x.example"}, 16_384)
    assert [(p.loc[-1], p.msg) for p in mixed.value.problems] == [
        ("headline", "is required by template product_update"),
        ("summary", "is required by template product_update"),
        ("cta_label", "is required by template product_update"),
        ("cta_url", "must be an absolute https:// URL"),
    ]


def test_the_api_names_every_missing_variable_and_stores_nothing(
    own_stack: OwnStack, own_client: TestClient
) -> None:
    body = {"template": "security_alert", "user_id": "u-1", "email": "ada@example.com", "data": {}}
    response = own_client.post("/v1/notifications", json=body, headers=own_stack.auth)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [problem["loc"] for problem in detail] == [
        ["body", "data", name] for name in get_template("security_alert").variables
    ]
    assert {problem["msg"] for problem in detail} == {"is required by template security_alert"}
    assert stored(own_stack) == 0


def test_a_campaign_names_every_missing_variable(
    own_stack: OwnStack, own_client: TestClient
) -> None:
    body = {"name": "Dark mode", "template": "product_update", "data": {"first_name": "Ada"}}
    response = own_client.post("/v1/campaigns", json=body, headers=own_stack.auth)
    assert response.status_code == 422
    assert [problem["loc"][-1] for problem in response.json()["detail"]] == [
        "headline",
        "summary",
        "cta_url",
        "cta_label",
    ]


# --- no "Value error, " ----------------------------------------------------------------------


BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/notifications", {"template": "security_alert", "user_id": "u-1", "email": "x"}),
    ("PUT", "/v1/users/u-1", {"email": "ada@example.com", "timezone": "Mars/Base"}),
    ("PUT", "/v1/users/u-1", {"email": "ada@example.com", "locale": "not a locale"}),
    ("PUT", "/v1/users/u-1", {"email": "ada@example.test"}),
    ("POST", "/v1/campaigns", {"name": "x", "template": "product_update", "send_at": "soon"}),
    ("POST", "/v1/campaigns", {"name": "x", "template": "product_update", "send_at_local": "1"}),
    ("POST", "/v1/suppressions", {"email": "not an address", "reason": "operator"}),
    ("PATCH", "/v1/users/u-1/preferences", {"security": False}),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_REQUESTS)
def test_no_422_message_starts_with_the_validation_librarys_prefix(
    own_stack: OwnStack, own_client: TestClient, method: str, path: str, body: dict[str, Any]
) -> None:
    own_client.put("/v1/users/u-1", json={"email": "ada@example.com"}, headers=own_stack.auth)
    response = own_client.request(method, path, json=body, headers=own_stack.auth)
    assert response.status_code == 422, response.text
    for msg in messages(response):
        assert msg and "Value error" not in msg and "Assertion failed" not in msg, msg


def test_a_path_value_is_refused_without_the_prefix_too(
    own_stack: OwnStack, own_client: TestClient
) -> None:
    response = own_client.delete("/v1/suppressions/not-an-address", headers=own_stack.auth)
    assert response.status_code == 422
    assert not any("Value error" in msg for msg in messages(response))


# --- JSON without a JSON content type ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "said"),
    [
        (None, "had no Content-Type"),
        ("application/x-www-form-urlencoded", "said application/x-www-form-urlencoded"),
        ("text/plain; charset=utf-8", "said text/plain"),
    ],
)
def test_a_json_body_without_a_json_content_type_is_told_to_send_one(
    own_stack: OwnStack, own_client: TestClient, content_type: str | None, said: str
) -> None:
    body = {"template": "security_alert", "user_id": "u-1", "email": "ada@example.com"}
    headers = {**own_stack.auth}
    if content_type is not None:
        headers["Content-Type"] = content_type
    for method, path in (("POST", "/v1/notifications"), ("PUT", "/v1/users/u-1")):
        response = own_client.request(method, path, content=json.dumps(body), headers=headers)
        assert response.status_code == 422
        (msg,) = messages(response)
        assert "Content-Type: application/json" in msg and said in msg, msg
    patch = own_client.patch(
        "/v1/users/u-1/preferences", content=b'{"product_updates": false}', headers=headers
    )
    assert "Content-Type: application/json" in messages(patch)[0]
    assert stored(own_stack) == 0


def test_a_json_body_that_is_not_an_object_gets_no_content_type_hint(
    own_stack: OwnStack, own_client: TestClient
) -> None:
    headers = {**own_stack.auth, "Content-Type": "application/json"}
    response = own_client.post("/v1/notifications", content=b"[1, 2]", headers=headers)
    assert response.status_code == 422
    assert "Content-Type" not in messages(response)[0]


# --- unknown templates --------------------------------------------------------------------------


def test_an_unknown_template_is_a_404_that_lists_the_known_ones(
    own_stack: OwnStack, own_client: TestClient
) -> None:
    body = {"template": "security_alrt", "user_id": "u-1", "email": "ada@example.com"}
    for path, payload in (
        ("/v1/notifications", body),
        ("/v1/campaigns", {"name": "x", "template": "security_alrt"}),
    ):
        response = own_client.post(path, json=payload, headers=own_stack.auth)
        assert response.status_code == 404
        detail = response.json()["detail"]
        assert "'security_alrt'" in detail
        assert ", ".join(KNOWN) in detail, detail
    assert stored(own_stack) == 0


def test_the_lookup_error_carries_the_known_names() -> None:
    with pytest.raises(TemplateNotFoundError) as raised:
        get_template("nope")
    assert raised.value.args == ("nope",)
    assert list(raised.value.known) == KNOWN
