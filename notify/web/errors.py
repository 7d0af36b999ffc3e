"""One JSON shape for every error: ``{"detail": ...}``, a list of field problems for 422.

Field problems look like FastAPI's own validation errors (``loc``, ``msg``, ``type``), so a
client handles ours and the framework's the same way. Nothing here ever shows a traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from notify.delivery.outbox import IdempotencyConflictError
from notify.masking import redact_path
from notify.message.template_data import InvalidFieldError
from notify.message.templates import TemplateNotFoundError
from notify.people.recipients import UnknownRecipientError

log = logging.getLogger(__name__)


def field_error(loc: tuple[str, ...], msg: str, kind: str = "value_error") -> JSONResponse:
    body = {"detail": [{"loc": ["body", *loc], "msg": msg, "type": kind}]}
    return JSONResponse(status_code=422, content=body)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidFieldError)
    async def _field_problem(_: Request, error: InvalidFieldError) -> JSONResponse:
        return field_error(error.loc, error.msg)

    @app.exception_handler(TemplateNotFoundError)
    async def _unknown_template(_: Request, error: TemplateNotFoundError) -> JSONResponse:
        return JSONResponse(
            status_code=404, content={"detail": f"unknown template {error.args[0]!r}"}
        )

    @app.exception_handler(UnknownRecipientError)
    async def _unknown_recipient(_: Request, __: UnknownRecipientError) -> JSONResponse:
        # Unknown and erased people look the same; the id is not echoed back.
        return JSONResponse(status_code=404, content={"detail": "no such user"})

    @app.exception_handler(IdempotencyConflictError)
    async def _conflict(_: Request, __: IdempotencyConflictError) -> JSONResponse:
        detail = "this idempotency key was used for a different request"
        return JSONResponse(status_code=409, content={"detail": detail})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "loc": list(item.get("loc", ())),
                "msg": item.get("msg", ""),
                "type": item.get("type", ""),
            }
            for item in error.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": problems})

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, __: DataError) -> JSONResponse:
        # The database refused a value (a NUL character, or longer than its column).
        detail = "a value cannot be stored: too long, or it holds a NUL character"
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error(
            "unhandled %s on %s %s",
            type(error).__name__,
            request.method,
            redact_path(request.url.path),
        )
        return JSONResponse(
            status_code=500, content={"detail": "internal error; it has been logged"}
        )
