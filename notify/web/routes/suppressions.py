"""``/v1/suppressions``: the operator's suppression list, and bounce and complaint reports."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from notify.delivery.transport import HARD_BOUNCE_CODES
from notify.message.validation import normalised_email
from notify.models import ConsentSource, SuppressionReason
from notify.people import suppressions
from notify.people.consent import Origin
from notify.producers.api_keys import Caller
from notify.web.auth import require_scope
from notify.web.schemas import Email, Strict
from notify.web.state import web_state

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"])
Writer = Annotated[Caller, Depends(require_scope("preferences:write"))]


class SuppressionIn(Strict):
    email: Email
    reason: Literal["operator", "complaint", "hard_bounce"] = "operator"
    detail: str | None = Field(default=None, max_length=500)


class ReportIn(Strict):
    email: Email
    type: Literal["bounce", "complaint"]
    status: str | None = Field(default=None, pattern=r"^[245]\.\d{1,3}\.\d{1,3}$")
    detail: str | None = Field(default=None, max_length=500)


class ReportOut(Strict):
    suppressed: bool
    reason: str | None


@router.post("", status_code=201)
def add_suppression(
    body: SuppressionIn, request: Request, response: Response, caller: Writer
) -> dict[str, str]:
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
    return {"status": "suppressed", "reason": body.reason}


@router.delete("/{email}", status_code=204)
def lift_suppression(email: str, request: Request, caller: Writer) -> Response:
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


@router.post("/reports", response_model=ReportOut)
def report(body: ReportIn, request: Request, caller: Writer) -> ReportOut:
    """A bounce or complaint from a provider: hard bounces (5.1.1, 5.1.2, 5.2.1) and complaints
    suppress the address; soft bounces and policy rejections (4.x.x, 5.7.x) do not."""
    if body.type == "complaint":
        reason = SuppressionReason.COMPLAINT
        source = ConsentSource.COMPLAINT
    elif body.status in HARD_BOUNCE_CODES:
        reason, source = SuppressionReason.HARD_BOUNCE, ConsentSource.BOUNCE
    else:
        return ReportOut(suppressed=False, reason=None)
    state = web_state(request)
    with state.sessions.begin() as session:
        suppressions.suppress(
            session,
            state.settings.hash_key,
            body.email,
            reason,
            Origin(source, actor=caller.name),
            body.detail,
        )
    return ReportOut(suppressed=True, reason=reason.value)
