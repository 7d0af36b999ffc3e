"""``POST /v1/users/import``: many users at once, from CSV or JSON lines."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from notify.people.importing import Format, import_users
from notify.producers.api_keys import Caller
from notify.web.auth import require_any_scope
from notify.web.responses import API_ERRORS, also
from notify.web.state import web_state

router = APIRouter(prefix="/v1/users", tags=["users"], responses=API_ERRORS)
FORMATS: dict[str, Format] = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/jsonlines": "jsonl",
}


class RowErrorOut(BaseModel):
    line: int
    error: str


class ImportOut(BaseModel):
    imported: int
    rejected: int
    errors: list[RowErrorOut]


@router.post(
    "/import",
    response_model=ImportOut,
    responses=also(415),
    openapi_extra={
        "requestBody": {
            # The size is added per app (``notify.web.openapi``): it is a setting.
            "content": {media: {"schema": {"type": "string"}} for media in FORMATS},
            "required": True,
        }
    },
)
async def import_users_endpoint(
    request: Request,
    _: Annotated[Caller, Depends(require_any_scope("users:write", "campaigns:write"))],
) -> ImportOut:
    """Upsert users from ``user_id,email,locale,timezone`` rows; bad rows are listed by line
    number and skipped. Preferences and suppressions are never touched. At most
    ``NOTIFY_MAX_IMPORT_BYTES`` of body (413 beyond, counted while it streams in)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = FORMATS.get(media)
    if fmt is None:
        raise HTTPException(415, f"send text/csv or application/x-ndjson, not {media or 'nothing'}")
    # notify.web.body_limit has already refused (413) a body over NOTIFY_MAX_IMPORT_BYTES.
    body = await request.body()
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problem = {
            "loc": ("body",),
            "msg": f"the file is not UTF-8 (byte {error.start})",
            "type": "value_error",
        }
        raise RequestValidationError([problem]) from None
    state = web_state(request)
    result = await run_in_threadpool(
        import_users, state.sessions, text.splitlines(), fmt, hash_key=state.settings.hash_key
    )
    errors = [RowErrorOut(line=e.line, error=e.error) for e in result.errors]
    return ImportOut(imported=result.imported, rejected=result.rejected, errors=errors)
