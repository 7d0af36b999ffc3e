"""Explanations: ``GET /v1/notifications/{id}/explain`` (what its claim decided) and
``POST /v1/explain`` (what a message of a template to a person would meet now, unsent)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.orm import Session

from notify.delivery import outbox
from notify.message.templates import get_template
from notify.models import Notification
from notify.models.base import utcnow
from notify.people import decisions, recipients
from notify.producers.api_keys import Caller
from notify.web.auth import require_any_scope, require_scope
from notify.web.responses import API_ERRORS, also
from notify.web.schemas import Decision, ExplainIn, ExplainOut, NotificationExplained
from notify.web.state import db_session, web_state

router = APIRouter(tags=["explain"], responses=API_ERRORS)
READS_ANY_NOTIFICATION = "users:read"
NotificationReader = Annotated[
    Caller, Depends(require_any_scope("notifications:send", READS_ANY_NOTIFICATION))
]
PreferenceReader = Annotated[Caller, Depends(require_scope("preferences:read"))]


def _readable(session: Session, notification_id: str, caller: Caller) -> Notification | None:
    """The key that sent a notification reads its explanation; a key with ``users:read``
    reads any (a campaign's messages were sent by no key)."""
    if READS_ANY_NOTIFICATION in caller.scopes:
        return session.get(Notification, notification_id, options=[outbox.WITHOUT_DATA])
    return outbox.get_for_caller(session, notification_id, caller.key_id)


@router.get(
    "/v1/notifications/{notification_id}/explain",
    response_model=NotificationExplained,
    responses=also(404),
)
def explain_notification(
    notification_id: str,
    caller: NotificationReader,
    session: Annotated[Session, Depends(db_session)],
) -> NotificationExplained:
    """Why the notification went out or not, as decided at its latest claim (``decision`` is
    null while it waits for its first)."""
    notification = _readable(session, notification_id, caller)
    if notification is None:
        raise HTTPException(404, "no such notification")
    record = decisions.recorded(session, notification.id)
    return NotificationExplained(
        id=notification.id,
        status=notification.status.value,
        reason=notification.reason,
        decision=None if record is None else Decision.model_validate(record),
    )


@router.post("/v1/explain", response_model=ExplainOut, responses=also(400, 404))
def explain_now(body: ExplainIn, request: Request, _: PreferenceReader) -> ExplainOut:
    """What a message of ``template`` to ``user_id`` would meet if it were claimed now: the
    same rule and record as a claim's, without sending or writing anything."""
    state = web_state(request)
    category = get_template(body.template).category.key
    with state.sessions() as session:
        recipient = recipients.require_live(session, body.user_id)
        record = decisions.explain_now(
            session,
            recipient.id,
            category,
            state.settings.default_subscriptions,
            now=utcnow(),
            default_zone=state.settings.default_timezone,
        )
    if record is None:  # erased between the two reads
        raise recipients.UnknownRecipientError(body.user_id)
    return ExplainOut(
        user_id=body.user_id, template=body.template, decision=Decision.model_validate(record)
    )
