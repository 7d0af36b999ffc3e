"""``/v1/users/{user_id}``: create or update a recipient, and read one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy.exc import IntegrityError

from notify.models import Recipient
from notify.people import recipients
from notify.producers.api_keys import Caller
from notify.web.auth import require_scope
from notify.web.responses import API_ERRORS, also
from notify.web.schemas import UserId, UserIn, UserOut
from notify.web.state import web_state

router = APIRouter(prefix="/v1/users", tags=["users"], responses=API_ERRORS)


def _out(recipient: Recipient) -> UserOut:
    return UserOut.model_validate(recipient, from_attributes=True)


@router.put(
    "/{user_id}",
    response_model=UserOut,
    responses={201: {"model": UserOut, "description": "Created"}, **also(400, 409)},
)
def put_user(
    user_id: UserId,
    body: UserIn,
    request: Request,
    response: Response,
    _: Annotated[Caller, Depends(require_scope("users:write"))],
) -> UserOut:
    """Create the user (201) or update the fields given (200). Later sends use the new address."""
    sessions = web_state(request).sessions
    for _attempt in range(2):  # a concurrent first PUT for the same user wins the insert
        try:
            with sessions.begin() as session:
                recipient, created = recipients.upsert(
                    session,
                    user_id,
                    email=body.email,
                    hash_key=web_state(request).settings.hash_key,
                    locale=body.locale,
                    timezone=body.timezone,
                    first_name=body.first_name,
                    name=body.name,
                    attributes=body.attributes,
                )
                response.status_code = 201 if created else 200
                return _out(recipient)
        except IntegrityError:
            continue
    raise HTTPException(409, "the user was being created concurrently; try again")


@router.get("/{user_id}", response_model=UserOut, responses=also(404))
def get_user(
    user_id: UserId,
    request: Request,
    _: Annotated[Caller, Depends(require_scope("users:read"))],
) -> UserOut:
    with web_state(request).sessions() as session:
        return _out(recipients.require_live(session, user_id))
