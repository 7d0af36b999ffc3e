"""The outermost middleware: every request gets a request id and is counted and timed.

* The request id is the client's ``X-Request-ID`` when it is a plain token of at most 64
  characters (letters, digits, ``.``, ``_``, ``:``, ``-``), else a new one. It is answered in
  ``X-Request-ID``, bound to every log line the request writes, and stored with a notification
  the request creates, so the worker's lines about that notification carry it too.
* ``notify_http_requests_total`` and ``notify_http_request_duration_seconds`` are labelled by
  the route's template (``/v1/notifications/{notification_id}``, never the path itself, which
  may hold a token) and by method from a closed set.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notify.observability import metrics

HEADER = "X-Request-ID"
_GIVEN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_of(request: Request) -> str | None:
    """The id :class:`Observe` gave this request (None outside it)."""
    found = getattr(request.state, "request_id", None)
    return found if isinstance(found, str) else None


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given = bytes(value).decode("latin-1")
            if _GIVEN.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500  # if the app ends without a response start

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)
            structlog.contextvars.reset_contextvars(**bound)
