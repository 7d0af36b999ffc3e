"""``/v1/suppressions``: the operator's suppression list, and bounce and complaint reports."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from notify.delivery import outbox
from notify.delivery.transport import HARD_BOUNCE_CODES
from notify.message.validation import normalised_email
from notify.models import ConsentSource, SuppressionReason
from notify.people import soft_bounces, suppressions
from notify.people.consent import Origin
from notify.producers.api_keys import Caller
from notify.producers.callbacks.events import EventType
from notify.web.auth import require_scope
from notify.web.responses import API_ERRORS, also
from notify.web.schemas import Email, EmailInPath, Strict
from notify.web.state import web_state

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"], responses=API_ERRORS)
Writer = Annotated[Caller, Depends(require_scope("preferences:write"))]
REPORTS = "reports"


# Free text kept with the suppression: no NUL character, which PostgreSQL cannot store.
Detail = Annotated[str, Field(max_length=500, pattern=r"^[^\x00]*$")]


class SuppressionIn(Strict):
    email: Email
    reason: Literal["operator", "complaint", "hard_bounce"] = "operator"
    detail: Detail | None = None


class ReportIn(Strict):
    email: Email
    type: Literal["bounce", "complaint"]
    status: str | None = Field(default=None, pattern=r"^[245]\.\d{1,3}\.\d{1,3}$")
    detail: Detail | None = None
    notification_id: str | None = Field(
        default=None,
        max_length=36,
        description=(
            "the notification the report is about, if known: its key's callback endpoints "
            "get notification.bounced or notification.complained"
        ),
    )


class ReportOut(Strict):
    suppressed: bool
    reason: str | None


class SuppressedOut(BaseModel):
    status: Literal["suppressed"]
    reason: Literal["operator", "complaint", "hard_bounce"]


@router.post(
    "",
    status_code=201,
    response_model=SuppressedOut,
    responses={200: {"model": SuppressedOut, "description": "Already suppressed"}, **also(400)},
)
def add_suppression(
    body: SuppressionIn, request: Request, response: Response, caller: Writer
) -> SuppressedOut:
    """Suppress the address: 201, or 200 when it already was (nothing changes)."""
    state = web_state(request)
    origin = Origin(ConsentSource.OPERATOR, actor=caller.name)
    with state.sessions.begin() as session:
        changed = suppressions.suppress(
            session,
            state.settings.hash_key,
            body.email,
            SuppressionReason(body.reason),
            origin,
            body.detail,
        )
    response.status_code = 201 if changed else 200
    return SuppressedOut(status="suppressed", reason=body.reason)


@router.delete("/{email}", status_code=204, responses=also(404))
def lift_suppression(email: EmailInPath, request: Request, caller: Writer) -> Response:
    """Lift the suppression of this address: 204, or 404 when it is not suppressed."""
    if email == REPORTS:
        # The path of the report operation, which OpenAPI (a fixed path before a template)
        # and ``notify.web.errors.allowed_methods`` give only POST: 405, Allow: POST.
        raise HTTPException(405, "Method Not Allowed")
    try:
        address = normalised_email(email)
    except ValueError as error:
        problem = {"loc": ("path", "email"), "msg": str(error), "type": "value_error"}
        raise RequestValidationError([problem]) from None
    state = web_state(request)
    origin = Origin(ConsentSource.OPERATOR, actor=caller.name)
    with state.sessions.begin() as session:
        lifted = suppressions.lift(session, state.settings.hash_key, address, origin)
    if not lifted:
        raise HTTPException(404, "this address is not suppressed")
    return Response(status_code=204)


@router.post(f"/{REPORTS}", response_model=ReportOut, responses=also(400))
def report(body: ReportIn, request: Request, caller: Writer) -> ReportOut:
    """A bounce or complaint from a provider: hard bounces (5.1.1, 5.1.2, 5.2.1) and complaints
    suppress the address; other bounces but policy refusals (5.7.x) are soft and counted (the
    rule of :mod:`notify.people.soft_bounces`). With a ``notification_id``, its key's
    endpoints hear of it, in the same transaction."""
    reason: SuppressionReason | None = None
    state = web_state(request)
    notification_id = body.notification_id
    if notification_id is not None:
        # Only a report about the address that notification went to speaks for it.
        digest = suppressions.address_hash(state.settings.hash_key, body.email)
        with state.sessions() as session:
            if not outbox.sent_to(session, notification_id, digest):
                notification_id = None
    if body.type == "complaint":
        reason, source = SuppressionReason.COMPLAINT, ConsentSource.COMPLAINT
    elif body.status in HARD_BOUNCE_CODES:
        reason, source = SuppressionReason.HARD_BOUNCE, ConsentSource.BOUNCE
    soft = body.type == "bounce" and reason is None and soft_bounces.counts(body.status)
    with state.sessions.begin() as session:
        if soft:
            campaign_id = outbox.campaign_of(session, notification_id)
            origin = Origin(ConsentSource.BOUNCE, caller.name, notification_id, campaign_id)
            if soft_bounces.record(session, state.settings, body.email, origin):
                reason = SuppressionReason.HARD_BOUNCE  # its soft bounces reached the rule
        if notification_id is not None:
            kind = EventType.COMPLAINED if body.type == "complaint" else EventType.BOUNCED
            outbox.report_feedback(session, notification_id, kind)
        if reason is not None and not soft:
            campaign_id = outbox.campaign_of(session, notification_id)
            suppressions.suppress(
                session,
                state.settings.hash_key,
                body.email,
                reason,
                Origin(source, caller.name, notification_id, campaign_id),
                body.detail,
            )
    return ReportOut(suppressed=reason is not None, reason=reason.value if reason else None)
