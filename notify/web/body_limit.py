"""A size limit on every request body, enforced while the body streams in.

:class:`BodyLimit` is pure ASGI middleware. A ``Content-Length`` above the limit is answered 413
at once, before the app runs or a byte of the body is read. Without one (a chunked body), the
bytes of the ``http.request`` messages the app receives are counted and the message that passes
the limit raises :class:`BodyTooLargeError` (an ``HTTPException``, answered 413 by FastAPI's
handler); every later read raises again without reading. So the app never holds more than the
limit plus the one message the server had already received. Both 413s carry
``Connection: close``, so the server drops the rest of the body instead of draining it.

The one-click endpoint (``POST /u/<token>``) is the exception: RFC 8058 says any body
unsubscribes, so a large one is not answered 413 up front; its route reads a body only up to
its own small limit and treats anything larger as empty (``notify.web.forms``).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Routes that take bulk bodies: a user import, and a campaign whose audience may list 30,000
# user ids. Every other route gets the API's limit.
BULK_ROUTES = frozenset(
    {
        ("POST", "/v1/users/import"),
        ("POST", "/v1/campaigns"),
        ("POST", "/console/campaigns/new"),
        ("POST", "/console/audience/check"),
        ("POST", "/console/audience/import"),
    }
)
# Bulk bodies on paths with an id in them.
BULK_PATHS = (("POST", re.compile(r"/console/campaigns/\d+/edit")),)
_CLOSE = {"Connection": "close"}


def _message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes, the most this endpoint accepts"


class BodyTooLargeError(HTTPException):
    """The body passed the limit while it was being read: 413, and the connection is closed."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_message(limit), headers=_CLOSE)


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` as a number, or None when absent or not a number (the
    HTTP server refuses a malformed one before the app sees the request)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def is_one_click(scope: Scope) -> bool:
    """Whether the request is an RFC 8058 one-click POST (``POST /u/<token>``)."""
    path = str(scope.get("path", ""))
    return scope.get("method") == "POST" and path.startswith("/u/") and path.count("/") == 2


class BodyLimit:
    """Answers 413 for a body larger than ``api_bytes`` (``bulk_bytes`` on ``bulk_routes``, given
    as ``(method, path)``), counting as it streams; see the module docstring for guarantees."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_bytes: int,
        bulk_bytes: int,
        bulk_routes: Collection[tuple[str, str]] = BULK_ROUTES,
    ) -> None:
        self.app = app
        self.api_bytes = api_bytes
        self.bulk_bytes = bulk_bytes
        self.bulk_routes = frozenset(bulk_routes)

    def limit_for(self, scope: Scope) -> int:
        """The most bytes of body this request may carry."""
        route = (str(scope.get("method", "")), str(scope.get("path", "")).rstrip("/"))
        if route in self.bulk_routes or any(
            route[0] == method and pattern.fullmatch(route[1]) for method, pattern in BULK_PATHS
        ):
            return self.bulk_bytes
        return self.api_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = declared_length(scope)
        if declared is not None and declared > limit and not is_one_click(scope):
            response = JSONResponse(
                status_code=413, content={"detail": _message(limit)}, headers=_CLOSE
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            if received > limit:
                raise BodyTooLargeError(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        await self.app(scope, counted, send)
