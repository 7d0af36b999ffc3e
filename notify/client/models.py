"""What the client returns: the service's answers as typed, frozen values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Accepted:
    """A queued notification: its id, its status (``queued``) and the idempotency key it was
    sent with (the same key sends it at most once)."""

    id: str
    status: str
    idempotency_key: str


@dataclass(frozen=True)
class NotificationState:
    id: str
    status: str  # queued, sending, sent, suppressed, failed
    reason: str | None
    attempts: int
    template: str
    category: str
    created_at: datetime
    sent_at: datetime | None
    message_id: str | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> NotificationState:
        sent_at = body.get("sent_at")
        return cls(
            id=str(body["id"]),
            status=str(body["status"]),
            reason=body.get("reason"),
            attempts=int(body.get("attempts", 0)),
            template=str(body["template"]),
            category=str(body["category"]),
            created_at=datetime.fromisoformat(str(body["created_at"]).replace("Z", "+00:00")),
            sent_at=datetime.fromisoformat(str(sent_at).replace("Z", "+00:00"))
            if sent_at
            else None,
            message_id=body.get("message_id"),
        )
