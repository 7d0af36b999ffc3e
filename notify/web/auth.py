"""Bearer API keys and scopes: 401 without a valid key, 403 without the scope.

Every ``/v1/...`` request is authenticated by :class:`AuthenticateFirst` before the route runs,
so before FastAPI reads a single byte of the body: a missing or malformed ``Authorization``
header, or an unknown or revoked key, is answered 401 at once. The route's dependencies
(:func:`current_caller`, :func:`require_scope`) then use the caller found there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from notify.db import SessionFactory
from notify.producers.api_keys import Caller, CallerCache, authenticate

_bearer = HTTPBearer(auto_error=False)  # kept as a dependency: OpenAPI shows the scheme
CALLER_KEY = "notify.caller"  # where the authenticated Caller waits in the ASGI scope
MAX_SECRET_CHARS = 200  # our keys are 47 characters; anything far longer is not one
NO_KEY = "an API key is needed: Authorization: Bearer <key>"
UNKNOWN_KEY = "unknown or revoked API key"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def is_api_path(path: str) -> bool:
    """Whether ``path`` belongs to the key-protected JSON API."""
    return path == "/v1" or path.startswith("/v1/")


def presented_secret(scope: Scope) -> str | None:
    """The secret of the one ``Authorization: Bearer <secret>`` header, or None if there is no
    such header, more than one, another scheme, or a secret that cannot be a key."""
    values = [value for name, value in scope.get("headers", ()) if name == b"authorization"]
    if len(values) != 1:
        return None
    try:
        text = values[0].decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    scheme, _, secret = text.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > MAX_SECRET_CHARS:
        return None
    return None if any(character.isspace() for character in secret) else secret


def _lookup(sessions: SessionFactory, secret: str) -> Caller | None:
    with sessions() as session:
        return authenticate(session, secret)


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class AuthenticateFirst:
    """Pure ASGI middleware: on ``/v1/...`` it answers 401 (``{"detail": ...}``,
    ``WWW-Authenticate: Bearer``) unless the request carries a live key, and never reads the
    body to decide. A 401 for a request with a body also says ``Connection: close``, so the
    server drops the unread body. A database that does not answer raises here, and
    ``notify.web.errors.ErrorBoundary`` answers 503."""

    def __init__(
        self, app: ASGIApp, *, sessions: SessionFactory, cache: CallerCache | None = None
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.cache = cache or CallerCache(0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        secret = presented_secret(scope)
        caller = None
        if secret is not None:
            caller = self.cache.get(secret)
            if caller is None:
                caller = await anyio.to_thread.run_sync(_lookup, self.sessions, secret)
                if caller is not None:
                    self.cache.put(secret, caller)
        if caller is not None:
            scope[CALLER_KEY] = caller
            await self.app(scope, receive, send)
            return
        headers = {**_CHALLENGE, **({"Connection": "close"} if _has_body(scope) else {})}
        detail = NO_KEY if secret is None else UNKNOWN_KEY
        response = JSONResponse(status_code=401, content={"detail": detail}, headers=headers)
        await response(scope, receive, send)


async def current_caller(  # async: no I/O, so FastAPI need not hop to a thread for it
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller :class:`AuthenticateFirst` found for this request; 401 if there is none (a
    route outside ``/v1`` that asks for a key, or an app built without the middleware)."""
    caller = request.scope.get(CALLER_KEY)
    if not isinstance(caller, Caller):
        raise HTTPException(401, NO_KEY, headers=_CHALLENGE)
    return caller


def require_scope(scope: str) -> Callable[[Caller], Awaitable[Caller]]:
    async def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if scope not in caller.scopes:
            raise HTTPException(403, f"this key lacks the scope {scope}")
        return caller

    return check


def require_any_scope(*scopes: str) -> Callable[[Caller], Awaitable[Caller]]:
    async def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not caller.scopes.intersection(scopes):
            raise HTTPException(403, f"this key needs one of the scopes {', '.join(scopes)}")
        return caller

    return check
