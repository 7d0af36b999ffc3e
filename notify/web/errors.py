"""One JSON shape for every error: ``{"detail": ...}``, a list of field problems for 422.

Field problems look like FastAPI's own validation errors (``loc``, ``msg``, ``type``), so a
client handles ours and the framework's the same way. Nothing here ever shows a traceback.

Errors no route handles end in :class:`ErrorBoundary`, the one place that answers and logs them:

- the database (or the broker) not answering, a 503 with ``Retry-After``: JSON for the API, an
  HTML page for the public pages (``/u/...``, ``/preferences...``);
- stored personal data that no data key of this process decrypts (a key dropped before
  ``notify privacy rotate-keys`` ran, or a key given to another process first): the same 503,
  since the data is whole and a process with the key reads it; the JSON says a data key is
  missing, the log line says so at ERROR, and neither names a value;
- anything else, a 500.

Its log line names the route's template (``/v1/suppressions/{email}``), never the values in the
path; a path no route matches is logged with tokens hidden and addresses masked. Queries and
bodies are never logged.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notify.crypto import MISSING_KEY, UnencryptableError, missing_key
from notify.delivery.outbox import IdempotencyConflictError
from notify.masking import mask_addresses, redact_path
from notify.message.template_data import InvalidFieldError, shown
from notify.message.templates import TemplateNotFoundError
from notify.people.recipients import UnknownRecipientError
from notify.privacy.stats import RangeError
from notify.web.pages import page

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 15
_PUBLIC_PAGES = ("/u/", "/preferences")
_MAX_LOGGED_PATH = 200
_MAX_SEGMENT = 40
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def field_error(
    loc: Sequence[str], msg: str, kind: str = "value_error", where: str = "body"
) -> JSONResponse:
    """A 422 naming one field: ``{"detail": [{"loc": [where, *loc], "msg": ..., "type": ...}]}``;
    every part of ``loc`` is made safe to encode (see ``shown``)."""
    return fields_error([(loc, msg)], kind, where)


def fields_error(
    problems: Sequence[tuple[Sequence[str], str]], kind: str = "value_error", where: str = "body"
) -> JSONResponse:
    """A 422 with one entry per ``(loc, msg)`` of ``problems``, in their order, shaped as
    :func:`field_error`'s."""
    detail = [
        {"loc": [where, *(shown(part, 200) for part in loc)], "msg": msg, "type": kind}
        for loc, msg in problems
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


# Pydantic starts the message of an error raised in a validator with its kind; the message
# that follows is written for the client already.
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")
# The problem pydantic reports when the body is not an object: with a body sent as something
# other than JSON, FastAPI hands the model the raw bytes.
_NOT_AN_OBJECT = frozenset({"model_attributes_type", "dict_type", "model_type"})
_JSON_HINT = (
    "the body must be a JSON object sent with `Content-Type: application/json` ({said}; "
    "with curl, add -H 'Content-Type: application/json')"
)


def problem_message(msg: str) -> str:
    """A validation message as the API shows it: without pydantic's ``Value error, `` (or
    ``Assertion failed, ``) prefix. The one place such prefixes are removed."""
    for prefix in _PYDANTIC_PREFIXES:
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def is_json_media(content_type: str) -> bool:
    """Whether a Content-Type header value names JSON (``application/json``, ``…+json``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def loggable_path(scope: Scope, routes: Sequence[BaseRoute] = ()) -> str:
    """The request's path fit for a log line. The template of the route that took the request,
    or else of the first of ``routes`` that matches it (``/v1/suppressions/{email}``: no value
    from the path at all). A path no route matches is logged segment by segment: tokens after
    ``/u/`` and ``/preferences/`` hidden, addresses masked, any segment longer than
    :data:`_MAX_SEGMENT` (a token or key, perhaps) replaced by ``[long]``."""
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        for route in routes:
            if route.matches(scope)[0] is not Match.NONE:
                template = getattr(route, "path", None)
                break
    if isinstance(template, str):
        return template
    segments = redact_path(str(scope.get("path", ""))).split("/")
    masked = [
        "[long]" if len(segment) > _MAX_SEGMENT else mask_addresses(segment) for segment in segments
    ]
    return shown("/".join(masked), _MAX_LOGGED_PATH)


def outage_of(error: BaseException) -> str | None:
    """``"database"`` or ``"broker"`` when ``error`` means that service is not answering (a
    refused or dropped connection, a connect or pool timeout), else None."""
    if isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        return outage_of(error.exceptions[0])
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError):
        return "database"
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return "database"
    if isinstance(error, BrokerOperationalError):
        return "broker"
    return None


def is_public_page(path: str) -> bool:
    """Whether ``path`` is one of the HTML pages people reach from an email."""
    return path.startswith(_PUBLIC_PAGES)


MISSING_DATA_KEY = f"{MISSING_KEY}; an operator must add the key to NOTIFY_DATA_KEYS"


def unavailable(scope: Scope, cause: str) -> Response:
    """503 with ``Retry-After``: an HTML page on the public pages (which never says why),
    ``{"detail": "<cause>; try again in N seconds"}`` elsewhere."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if is_public_page(str(scope.get("path", ""))):
        response = page(Request(scope), "unavailable.html", {}, status_code=503)
        response.headers.update(headers)
        return response
    detail = f"{cause}; try again in {RETRY_AFTER_SECONDS} seconds"
    return JSONResponse(status_code=503, content={"detail": detail}, headers=headers)


def _answer(scope: Scope, error: Exception, routes: Sequence[BaseRoute]) -> Response:
    """The response for an error no handler took, after logging it without personal data."""
    where = f"{scope.get('method', '')} {loggable_path(scope, routes)}"
    part = outage_of(error)
    if part is not None:
        log.warning("%s unavailable (%s) on %s", part, type(error).__name__, where)
        return unavailable(scope, f"the {part} is not answering")
    if missing_key(error):
        log.error("a data key is missing: stored data cannot be decrypted on %s", where)
        return unavailable(scope, MISSING_DATA_KEY)
    if isinstance(error, StatementError) and isinstance(error.orig, UnencryptableError):
        return field_error((), "a value is not valid Unicode text (a lone surrogate)")
    # Frames only (file, line, function, source): an exception's message may quote input.
    frames = "".join(traceback.format_tb(error.__traceback__)[-12:])
    log.error("unhandled %s on %s\n%s", type(error).__name__, where, frames.rstrip())
    return JSONResponse(status_code=500, content={"detail": "internal error; it has been logged"})


class ErrorBoundary:
    """Pure ASGI middleware, outermost of ours: every exception from the middleware and routes
    inside it ends here, is logged once by :func:`_answer` and answered (if no response has
    started), and is not re-raised, so the server never logs a traceback with values in it."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.routes = routes  # to name the route in the log when it fails before routing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:
            response = _answer(scope, error, self.routes)
            if not started:
                await response(scope, receive, send)


def allowed_methods(scope: Scope, routes: Sequence[BaseRoute]) -> list[str]:
    """The methods ``Allow`` names for the request's path: those of the routes that match the
    path with the fewest path parameters, as the OpenAPI document reads paths
    (``/v1/suppressions/reports`` is the report operation's, not ``/v1/suppressions/{email}``'s).
    Starlette itself names only the first route that matches, one method of several."""
    matching = [
        route
        for route in routes
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] is not Match.NONE
    ]
    if not matching:
        return []
    fewest = min(len(route.param_convertors) for route in matching)
    methods: set[str] = set()
    for route in matching:
        if len(route.param_convertors) == fewest:
            methods |= route.methods or set()
    return sorted(methods)


def _validation_problems(error: RequestValidationError, content_type: str) -> list[dict[str, Any]]:
    """FastAPI's problems as the API answers them: locations made safe to encode, messages
    without pydantic's prefixes (:func:`problem_message`), and a body that is not an object
    while the request did not say JSON told how to send it (``content_type``: the request's
    header, empty when it had none)."""
    problems = []
    for item in error.errors():
        loc = [shown(part, 200) if isinstance(part, str) else part for part in item["loc"]]
        msg = problem_message(str(item.get("msg", "")))
        kind = item.get("type", "")
        if list(loc) == ["body"] and kind in _NOT_AN_OBJECT and not is_json_media(content_type):
            media = content_type.split(";", 1)[0].strip()
            said = f"this request said {media}" if media else "this request had no Content-Type"
            msg = _JSON_HINT.format(said=said)
        problems.append({"loc": loc, "msg": shown(msg, 1000), "type": kind})
    return problems


def install_error_handlers(app: FastAPI, routes: Sequence[BaseRoute] = ()) -> None:
    """Register the handlers and add :class:`ErrorBoundary`, which names ``routes`` (the app's
    routes) in its log lines; a 405 lists the methods of ``routes`` in ``Allow`` (see
    :func:`allowed_methods`). Call it after every other ``add_middleware``, so the boundary is
    the outermost of the app's middleware."""

    @app.exception_handler(InvalidFieldError)
    async def _field_problem(_: Request, error: InvalidFieldError) -> JSONResponse:
        return fields_error([(problem.loc, problem.msg) for problem in error.problems])

    @app.exception_handler(RangeError)
    async def _bad_range(_: Request, error: RangeError) -> JSONResponse:
        return field_error((error.field,), error.msg, where="query")

    @app.exception_handler(TemplateNotFoundError)
    async def _unknown_template(_: Request, error: TemplateNotFoundError) -> JSONResponse:
        name = shown(str(error.args[0]), 100)
        known = ", ".join(error.known) or "none"
        detail = f"unknown template {name!r}; the templates are {known} (GET /v1/templates)"
        return JSONResponse(status_code=404, content={"detail": detail})

    @app.exception_handler(UnknownRecipientError)
    async def _unknown_recipient(_: Request, __: UnknownRecipientError) -> JSONResponse:
        # Unknown and erased people look the same; the id is not echoed back.
        return JSONResponse(status_code=404, content={"detail": "no such user"})

    @app.exception_handler(IdempotencyConflictError)
    async def _conflict(_: Request, __: IdempotencyConflictError) -> JSONResponse:
        detail = "this idempotency key was used for a different request"
        return JSONResponse(status_code=409, content={"detail": detail})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = _validation_problems(error, request.headers.get("content-type", ""))
        return JSONResponse(status_code=422, content={"detail": problems})

    @app.exception_handler(405)
    async def _wrong_method(request: Request, error: StarletteHTTPException) -> JSONResponse:
        allow = ", ".join(allowed_methods(request.scope, routes))
        headers = {**(error.headers or {}), "Allow": allow}
        return JSONResponse(status_code=405, content={"detail": error.detail}, headers=headers)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, __: DataError) -> JSONResponse:
        # The database refused a value (a NUL character, or longer than its column); which
        # one is not known here, so the problem names the part of the request it came in.
        where = "body" if request.method in _BODY_METHODS else "path"
        msg = "a value cannot be stored: too long, or it holds a NUL character"
        return field_error((), msg, where=where)

    app.add_middleware(ErrorBoundary, routes=routes)
