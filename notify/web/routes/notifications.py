"""``/v1/notifications``: accept one notification (202), read its status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from notify.delivery import outbox
from notify.delivery.outbox import NotificationRequest
from notify.message.template_data import InvalidFieldError
from notify.producers.api_keys import Caller
from notify.web.auth import require_scope
from notify.web.observe import request_id_of
from notify.web.responses import API_ERRORS, also
from notify.web.schemas import IdempotencyKey, NotificationAccepted, NotificationIn, NotificationOut
from notify.web.state import db_session, web_state

router = APIRouter(prefix="/v1/notifications", tags=["notifications"], responses=API_ERRORS)
Sender = Annotated[Caller, Depends(require_scope("notifications:send"))]


@router.post(
    "", status_code=202, response_model=NotificationAccepted, responses=also(400, 404, 409)
)
async def send_notification(
    body: NotificationIn,
    caller: Sender,
    request: Request,
    idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
) -> NotificationAccepted:
    """Queue one notification. Repeating a request with its idempotency key sends nothing more."""
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise InvalidFieldError(("idempotency_key",), "differs from the Idempotency-Key header")
    state = web_state(request)
    submitted = NotificationRequest(
        template=body.template,
        user_id=body.user_id,
        email=body.email,
        data=body.data,
        idempotency_key=body.idempotency_key or idempotency_key,
    )
    # One hop to a thread for all the database work (the hot path of the API).
    accepted = await run_in_threadpool(
        outbox.accept,
        state.sessions,
        caller.key_id,
        submitted,
        max_data_bytes=state.settings.max_data_bytes,
        hash_key=state.settings.hash_key,
        request_id=request_id_of(request),
    )
    if accepted.created:  # committed: now the worker may see it
        state.publisher.submit(accepted.id, accepted.category)
    return NotificationAccepted(id=accepted.id, status=accepted.status)


@router.get("/{notification_id}", response_model=NotificationOut, responses=also(404))
def get_notification(
    notification_id: str, caller: Sender, session: Annotated[Session, Depends(db_session)]
) -> NotificationOut:
    """The notification's status; only the key that sent it can read it."""
    notification = outbox.get_for_caller(session, notification_id, caller.key_id)
    if notification is None:
        raise HTTPException(404, "no such notification")
    return NotificationOut.model_validate(notification, from_attributes=True)
