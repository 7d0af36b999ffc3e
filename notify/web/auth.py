"""Bearer API keys and scopes: 401 without a valid key, 403 without the scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from notify.producers.api_keys import Caller, authenticate
from notify.web.state import db_session

_bearer = HTTPBearer(auto_error=False)


def current_caller(
    session: Annotated[Session, Depends(db_session)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "an API key is needed: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = authenticate(session, credentials.credentials)
    if caller is None:
        raise HTTPException(
            401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return caller


def require_scope(scope: str) -> Callable[[Caller], Caller]:
    def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if scope not in caller.scopes:
            raise HTTPException(403, f"this key lacks the scope {scope}")
        return caller

    return check


def require_any_scope(*scopes: str) -> Callable[[Caller], Caller]:
    def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not caller.scopes.intersection(scopes):
            raise HTTPException(403, f"this key needs one of the scopes {', '.join(scopes)}")
        return caller

    return check
