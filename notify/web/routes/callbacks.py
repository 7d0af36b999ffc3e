"""``/v1/callbacks``: a producing service's status callbacks (scope ``callbacks``).

A key registers endpoints with the events it wants, rotates their secrets (two valid at once),
lists recent delivery attempts and sends an event again. A key sees only its own endpoints;
another key's answer 404 like a missing one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.models import CallbackAttempt, CallbackEndpoint, CallbackEvent
from notify.producers.api_keys import Caller
from notify.producers.callbacks import delivery, endpoints
from notify.producers.callbacks.events import EventType
from notify.web.auth import require_scope
from notify.web.responses import API_ERRORS, also
from notify.web.schemas import Strict
from notify.web.state import web_state

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"], responses=API_ERRORS)
Owner = Annotated[Caller, Depends(require_scope("callbacks"))]
EndpointId = Annotated[int, Path(ge=1, le=2**31 - 1)]
# An absolute http(s) URL in printable ASCII: a host name (an international one in its xn--
# form) or an IPv4 address, an optional port, no user name (the checks of
# notify.producers.callbacks.endpoints then refuse http:// and inward addresses outside
# development).
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=endpoints.MAX_URL_LENGTH,
        pattern=r"^https?://[-.0-9A-Z_a-z~]+(:[0-9]{1,5})?([/?#][!-~]*)?$",
    ),
]
Events = Annotated[list[EventType], Field(min_length=1, max_length=len(EventType))]
MAX_LISTED = 200


class EndpointIn(Strict):
    url: Url
    events: Events


class EndpointChange(Strict):
    url: Url | None = None
    events: Events | None = None


class EndpointOut(BaseModel):
    id: int
    url: str
    events: list[str]
    created_at: datetime
    secrets: int = Field(
        description="how many secrets sign each delivery now (1, or 2 while rotating)"
    )


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the signing secret (whsec_…): shown only now")


class SecretOut(BaseModel):
    secret: str = Field(description="the new signing secret (whsec_…): shown only now")
    valid: int = Field(description="secrets that sign each delivery now, this one included")


class AttemptOut(BaseModel):
    event_id: str
    type: str
    event_status: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class ReplayIn(Strict):
    event_id: str = Field(min_length=1, max_length=40)


class ReplayOut(BaseModel):
    event_id: str
    status: str


def _out(endpoint: CallbackEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "created_at": endpoint.created_at,
        "secrets": len(endpoints.secrets_of(endpoint)),
    }


def _checked_url(request: Request, url: str) -> str:
    development = web_state(request).settings.env == "development"
    try:
        return endpoints.checked_url(url, development=development)
    except endpoints.CallbackUrlError as error:
        problem = {"loc": ("body", "url"), "msg": str(error), "type": "value_error"}
        raise RequestValidationError([problem]) from None


def _own(caller: Caller, endpoint_id: int, session: Session) -> CallbackEndpoint:
    endpoint = endpoints.owned(session, caller.key_id, endpoint_id)
    if endpoint is None:
        raise HTTPException(404, "this key has no callback endpoint with that id")
    return endpoint


PEOPLES_CHOICES = "preferences:read"  # what preference.changed tells, the key must be able to read


def _allowed_events(caller: Caller, events: list[EventType]) -> list[str]:
    if EventType.PREFERENCE_CHANGED in events and PEOPLES_CHOICES not in caller.scopes:
        msg = f"preference.changed needs a key that also has the scope {PEOPLES_CHOICES}"
        raise RequestValidationError(
            [{"loc": ("body", "events"), "msg": msg, "type": "value_error"}]
        )
    return sorted({event.value for event in events})


@router.post("", status_code=201, response_model=EndpointCreated, responses=also(400, 409))
def register(body: EndpointIn, request: Request, caller: Owner) -> dict[str, Any]:
    """Register an endpoint for the events it wants; the answer holds its secret, once.
    ``preference.changed`` (every person's choices) needs the scope ``preferences:read`` too."""
    events = _allowed_events(caller, body.events)
    url = _checked_url(request, body.url)
    with web_state(request).sessions.begin() as session:
        try:
            endpoint, secret = endpoints.register(session, caller.key_id, url, events)
        except endpoints.TooManyEndpointsError as error:
            raise HTTPException(409, str(error)) from None
        return {**_out(endpoint), "secret": secret}


@router.get("", response_model=list[EndpointOut])
def list_endpoints(request: Request, caller: Owner) -> list[dict[str, Any]]:
    with web_state(request).sessions() as session:
        return [_out(endpoint) for endpoint in endpoints.active_for(session, caller.key_id)]


@router.get("/{endpoint_id}", response_model=EndpointOut, responses=also(404))
def get_endpoint(endpoint_id: EndpointId, request: Request, caller: Owner) -> dict[str, Any]:
    with web_state(request).sessions() as session:
        return _out(_own(caller, endpoint_id, session))


@router.patch("/{endpoint_id}", response_model=EndpointOut, responses=also(400, 404))
def change_endpoint(
    endpoint_id: EndpointId, body: EndpointChange, request: Request, caller: Owner
) -> dict[str, Any]:
    """A new URL or event list; events already queued keep going to the endpoint."""
    url = _checked_url(request, body.url) if body.url is not None else None
    events = _allowed_events(caller, body.events) if body.events is not None else None
    with web_state(request).sessions.begin() as session:
        endpoint = _own(caller, endpoint_id, session)
        if url is not None:
            endpoint.url = url
        if events is not None:
            endpoint.events = events
        session.flush()
        return _out(endpoint)


@router.delete("/{endpoint_id}", status_code=204, responses=also(404))
def remove_endpoint(endpoint_id: EndpointId, request: Request, caller: Owner) -> Response:
    """No more events; events not yet delivered are dropped (marked dead when due)."""
    with web_state(request).sessions.begin() as session:
        endpoints.disable(_own(caller, endpoint_id, session))
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/secrets", status_code=201, response_model=SecretOut, responses=also(404)
)
def rotate_secret(endpoint_id: EndpointId, request: Request, caller: Owner) -> SecretOut:
    """A new secret, shown once. The previous one keeps signing beside it until the next
    rotation or ``DELETE …/secrets/previous``, so a receiver can change over without a gap."""
    with web_state(request).sessions.begin() as session:
        endpoint = _own(caller, endpoint_id, session)
        secret = endpoints.rotate(endpoint)
        return SecretOut(secret=secret, valid=len(endpoints.secrets_of(endpoint)))


@router.delete("/{endpoint_id}/secrets/previous", status_code=204, responses=also(404))
def retire_previous_secret(endpoint_id: EndpointId, request: Request, caller: Owner) -> Response:
    with web_state(request).sessions.begin() as session:
        endpoints.retire_previous(_own(caller, endpoint_id, session))
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", response_model=list[AttemptOut], responses=also(404))
def deliveries(
    endpoint_id: EndpointId,
    request: Request,
    caller: Owner,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 50,
) -> list[dict[str, Any]]:
    """The endpoint's most recent delivery attempts, newest first, with each event's status
    now (``pending``, ``delivered`` or ``dead``)."""
    with web_state(request).sessions() as session:
        _own(caller, endpoint_id, session)
        rows = session.execute(
            select(CallbackAttempt, CallbackEvent.type, CallbackEvent.status)
            .join(CallbackEvent, CallbackEvent.id == CallbackAttempt.event_id)
            .where(CallbackAttempt.endpoint_id == endpoint_id)
            .order_by(CallbackAttempt.attempted_at.desc(), CallbackAttempt.id.desc())
            .limit(limit)
        ).all()
        return [
            {
                "event_id": attempt.event_id,
                "type": event_type,
                "event_status": str(status),
                "attempted_at": attempt.attempted_at,
                "status_code": attempt.status_code,
                "error": attempt.error,
                "duration_ms": attempt.duration_ms,
            }
            for attempt, event_type, status in rows
        ]


@router.post(
    "/{endpoint_id}/replay", status_code=202, response_model=ReplayOut, responses=also(400, 404)
)
def replay(endpoint_id: EndpointId, body: ReplayIn, request: Request, caller: Owner) -> ReplayOut:
    """Send an event of this endpoint again (delivered, dead or still pending), with the same
    ``webhook-id``, retried as a new event would be."""
    state = web_state(request)
    with state.sessions.begin() as session:
        _own(caller, endpoint_id, session)
        event = session.get(CallbackEvent, body.event_id)
        if event is None or event.endpoint_id != endpoint_id:
            raise HTTPException(404, "this endpoint has no event with that id")
        delivery.replay(session, event, timedelta(hours=state.settings.callback_retry_hours))
        return ReplayOut(event_id=event.id, status=str(event.status))
