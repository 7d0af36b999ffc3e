"""Each operation of the client as a request to make and an answer to read: shared by the
sync and the async client, which differ only in how they wait. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from notify.client.errors import NotifyError
from notify.client.models import Accepted, NotificationState

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _segment(value: str) -> str:
    return quote(value, safe="")


def new_idempotency_key() -> str:
    return f"notify-client-{uuid.uuid4()}"


def send(
    template: str,
    user_id: str,
    data: dict[str, Any] | None,
    email: str | None,
    idempotency_key: str,
) -> Call:
    body: dict[str, Any] = {"template": template, "user_id": user_id, "data": data or {}}
    if email is not None:
        body["email"] = email
    return Call("POST", "/v1/notifications", body, {IDEMPOTENCY_HEADER: idempotency_key})


def notification(notification_id: str) -> Call:
    return Call("GET", f"/v1/notifications/{_segment(notification_id)}")


def put_user(user_id: str, fields: dict[str, Any]) -> Call:
    return Call("PUT", f"/v1/users/{_segment(user_id)}", fields)


def user(user_id: str) -> Call:
    return Call("GET", f"/v1/users/{_segment(user_id)}")


def preferences(user_id: str) -> Call:
    return Call("GET", f"/v1/users/{_segment(user_id)}/preferences")


def set_preferences(user_id: str, choices: dict[str, bool]) -> Call:
    return Call("PATCH", f"/v1/users/{_segment(user_id)}/preferences", choices)


def answer(status: int, body: Any) -> Any:
    """The answer's JSON, or :class:`NotifyError` for an error status."""
    if status >= 400:
        detail = body.get("detail", body) if isinstance(body, dict) else body
        raise NotifyError(status, detail)
    return body


def accepted(status: int, body: Any, idempotency_key: str) -> Accepted:
    read = answer(status, body)
    return Accepted(id=str(read["id"]), status=str(read["status"]), idempotency_key=idempotency_key)


def state(status: int, body: Any) -> NotificationState:
    return NotificationState.from_json(answer(status, body))
