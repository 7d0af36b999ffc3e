"""The error responses of the JSON API as the OpenAPI document declares them, in one place.

Every ``/v1`` operation declares :data:`API_ERRORS` (through its router's ``responses=``): 401,
403, 413, 422 and 503, each with its body schema. An operation that can also answer 400, 404,
409 or 415 adds those with :func:`also`. Bodies have two shapes and no others:

- 422: ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` (:class:`ProblemsOut`),
  whether FastAPI or our own checks refused the request (see ``notify.web.errors``);
- every other error: ``{"detail": "one line of text"}`` (:class:`ErrorOut`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    """Any error but 422: what went wrong, in words."""

    detail: str


class ProblemOut(BaseModel):
    """One refused part of a request."""

    loc: list[str | int] = Field(
        description='Where: ``"body"``, ``"query"``, ``"path"`` or ``"header"``, then the '
        "field's path (names, and indexes into lists)."
    )
    msg: str = Field(description="What is wrong with it, in words.")
    type: str = Field(description="A short machine-readable kind, e.g. ``value_error``.")


class ProblemsOut(BaseModel):
    """A 422: every part of the request that was refused."""

    detail: list[ProblemOut]


def _error(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"model": ErrorOut, "description": description}
    if headers:
        response["headers"] = {
            name: {"description": text, "required": True, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


# Each status an API operation may answer besides its success, with its body and meaning.
ERRORS: dict[int, dict[str, Any]] = {
    400: _error("The body could not be parsed: not UTF-8 text, or JSON nested too deeply."),
    401: _error(
        "No key, or an unknown or revoked one: send ``Authorization: Bearer <key>``. Answered "
        "before any byte of the body is read.",
        {"WWW-Authenticate": "``Bearer``"},
    ),
    403: _error("The key lacks the scope this operation needs."),
    404: _error("What the path or the body names does not exist (or was erased)."),
    409: _error("The request conflicts with the current state; read it and try again."),
    413: _error(
        "The body is larger than this operation accepts (``NOTIFY_MAX_BODY_BYTES``; "
        "``NOTIFY_MAX_IMPORT_BYTES`` for imports and campaigns). The connection is closed."
    ),
    415: _error("The body's ``Content-Type`` is not one this operation reads."),
    422: {
        "model": ProblemsOut,
        "description": "The request was refused; ``detail`` lists each refused part.",
    },
    503: _error(
        "The database or the broker is not answering; try again later.",
        {"Retry-After": "Seconds to wait before trying again."},
    ),
}

SHARED_STATUSES = (401, 403, 413, 422, 503)
# For ``APIRouter(responses=...)``: what every ``/v1`` operation may answer.
API_ERRORS: dict[int | str, dict[str, Any]] = {status: ERRORS[status] for status in SHARED_STATUSES}


def also(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The declarations of ``statuses`` (from :data:`ERRORS`) for one operation's
    ``responses=``, on top of its router's :data:`API_ERRORS`."""
    return {status: ERRORS[status] for status in statuses}
