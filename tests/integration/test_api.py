"""The HTTP contract against real PostgreSQL: status codes, error bodies, scopes, nothing stored
on bad input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from notify.config import Settings
from notify.models import Notification, Recipient
from notify.web.app import create_app
from tests.support.stack import Stack, make_key, sample_data

pytestmark = pytest.mark.integration


def counts(stack: Stack) -> tuple[int, int]:
    with stack.sessions() as session:
        notifications = session.scalar(select(func.count()).select_from(Notification))
        recipients = session.scalar(select(func.count()).select_from(Recipient))
    return int(notifications or 0), int(recipients or 0)


def body(**overrides: Any) -> dict[str, Any]:
    user = uuid.uuid4().hex[:10]
    base = {
        "template": "security_alert",
        "user_id": f"u-{user}",
        "email": f"{user}@example.com",
        "data": sample_data("security_alert"),
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("payload", "status", "loc"),
    [
        (body(template="no_such_template"), 404, None),
        (body(email="not-an-address"), 422, ["body", "email"]),
        (body(email="ada@example.com\r\nBcc: x@evil.example"), 422, ["body", "email"]),
        (body(colour="blue"), 422, ["body", "colour"]),
        (body(data={"first_name": "Ada"}), 422, ["body", "data", "event"]),
        (body(data={**sample_data("security_alert"), "blob": "x" * 20_000}), 422, ["body", "data"]),
        (body(data="not an object"), 422, ["body", "data"]),
        (body(user_id=""), 422, ["body", "user_id"]),
        (body(user_id="a\u0000b"), 422, ["body", "user_id"]),
        (
            body(data={**sample_data("security_alert"), "event": "x" * 1500}),
            422,
            ["body", "data", "event"],
        ),
        (body(email=None, user_id=f"u-unknown-{uuid.uuid4().hex}"), 422, ["body", "email"]),
        (
            body(
                template="product_update",
                data={**sample_data("product_update"), "cta_url": "javascript:alert(1)"},
            ),
            422,
            ["body", "data", "cta_url"],
        ),
    ],
    ids=[
        "unknown-template",
        "malformed-email",
        "crlf-email",
        "unknown-field",
        "missing-variable",
        "oversized-data",
        "data-not-object",
        "empty-user-id",
        "nul-in-user-id",
        "huge-subject-word",
        "unknown-user-without-email",
        "non-https-url",
    ],
)
def test_bad_input_gets_a_clear_4xx_and_nothing_is_stored(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    payload: dict[str, Any],
    status: int,
    loc: list[str] | None,
) -> None:
    before = counts(stack)
    response = client.post("/v1/notifications", json=payload, headers=auth)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if loc is None:
        assert isinstance(detail, str) and detail
    else:
        assert detail[0]["loc"] == loc
        assert detail[0]["msg"]
    assert "Traceback" not in response.text
    assert counts(stack) == before


def test_a_body_that_is_not_json_is_a_422(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    response = client.post("/v1/notifications", content=b"{not json", headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_a_request_without_a_valid_key_is_401_and_without_the_scope_is_403(
    stack: Stack, client: TestClient
) -> None:
    assert client.post("/v1/notifications", json=body()).status_code == 401
    wrong = {"Authorization": "Bearer nfy_not-a-real-key"}
    assert client.post("/v1/notifications", json=body(), headers=wrong).status_code == 401
    reader = {"Authorization": f"Bearer {make_key(stack.sessions, 'users:read')}"}
    assert client.post("/v1/notifications", json=body(), headers=reader).status_code == 403
    assert (
        client.put("/v1/users/u-1", json={"email": "a@example.com"}, headers=reader).status_code
        == 403
    )
    sender = {"Authorization": f"Bearer {make_key(stack.sessions, 'notifications:send')}"}
    assert client.get("/v1/users/u-1", headers=sender).status_code == 403


def test_a_notification_can_be_read_only_by_the_key_that_sent_it(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    notification_id = client.post("/v1/notifications", json=body(), headers=auth).json()["id"]
    other = {"Authorization": f"Bearer {make_key(stack.sessions, 'notifications:send')}"}
    assert client.get(f"/v1/notifications/{notification_id}", headers=other).status_code == 404
    mine = client.get(f"/v1/notifications/{notification_id}", headers=auth)
    assert mine.status_code == 200
    assert set(mine.json()) == {
        "id",
        "status",
        "reason",
        "attempts",
        "template",
        "category",
        "created_at",
        "sent_at",
        "message_id",
    }
    assert client.get("/v1/notifications/nope", headers=auth).status_code == 404


def test_a_known_user_can_be_notified_without_an_email(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = f"u-{uuid.uuid4().hex}"
    created = client.put(f"/v1/users/{user_id}", json={"email": "known@example.com"}, headers=auth)
    assert created.status_code == 201
    response = client.post(
        "/v1/notifications", json=body(user_id=user_id, email=None), headers=auth
    )
    assert response.status_code == 202, response.text


def test_users_are_created_updated_and_read_with_validated_fields(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = f"u-{uuid.uuid4().hex}"
    first = client.put(
        f"/v1/users/{user_id}",
        json={"email": "Ada@Example.com", "locale": "en-GB", "timezone": "Europe/London"},
        headers=auth,
    )
    assert first.status_code == 201, first.text
    assert first.json()["email"] == "Ada@example.com"
    second = client.put(f"/v1/users/{user_id}", json={"email": "ada@example.org"}, headers=auth)
    assert second.status_code == 200
    assert second.json()["timezone"] == "Europe/London"
    got = client.get(f"/v1/users/{user_id}", headers=auth).json()
    assert got["email"] == "ada@example.org"
    assert got["user_id"] == user_id
    assert client.get("/v1/users/u-never-seen", headers=auth).status_code == 404
    bad_zone = client.put(
        f"/v1/users/{user_id}",
        json={"email": "a@example.com", "timezone": "Mars/Olympus"},
        headers=auth,
    )
    assert bad_zone.status_code == 422
    assert bad_zone.json()["detail"][0]["loc"] == ["body", "timezone"]


def test_templates_are_listed_with_their_category_and_required_variables(
    client: TestClient, auth: dict[str, str]
) -> None:
    listed = {item["name"]: item for item in client.get("/v1/templates", headers=auth).json()}
    assert set(listed) == {
        "security_alert",
        "admin_notice",
        "product_update",
        "markdown_update",
        "preferences_link",
    }
    assert listed["security_alert"]["category"] == "security"
    assert listed["security_alert"]["essential"] is True
    assert listed["product_update"]["essential"] is False
    assert "first_name" in listed["admin_notice"]["variables"]
    assert listed["product_update"]["recipient_fields"] == ["first_name"]
    assert listed["markdown_update"]["optional_variables"] == ["preheader"]


def test_openapi_describes_the_contract(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/notifications" in spec["paths"]
    assert "/v1/users/{user_id}" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_readyz_reports_each_dependency(stack: Stack, client: TestClient) -> None:
    healthy = client.get("/readyz")
    assert healthy.status_code == 200
    assert healthy.json()["checks"] == {"database": True, "broker": True, "migrations": True}

    broken = Settings(database_url=stack.settings.database_url, broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(broken)) as broken_client:
        response = broken_client.get("/readyz")
        alive = broken_client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "broker": False, "migrations": True}
    assert alive.status_code == 200  # alive, though not ready


def test_a_notification_is_accepted_even_when_the_broker_is_down(
    stack: Stack, auth: dict[str, str]
) -> None:
    settings = Settings(
        database_url=stack.settings.database_url, broker_url="redis://127.0.0.1:1/0"
    )
    with TestClient(create_app(settings)) as broken_client:
        response = broken_client.post("/v1/notifications", json=body(), headers=auth)
    assert response.status_code == 202
    with stack.sessions() as session:
        row = session.get(Notification, response.json()["id"])
    assert row is not None and row.status in ("queued", "sending", "sent")
