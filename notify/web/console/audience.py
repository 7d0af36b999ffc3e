"""The console's audience page: how many people each optional category reaches now, and an
upload of people (CSV or JSON lines) checked line by line before anything is imported.

The upload goes through :func:`notify.people.importing.import_users` twice: first with
``check_only`` (nothing written), then, once the operator confirms, for real, with the same
text carried in the confirmation form. Both are the API's own import.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, Response, UploadFile

from notify.campaigns.audience import reach
from notify.categories import non_essential
from notify.operators import audit
from notify.people.importing import Format, ImportResult, import_users
from notify.web.console import sessions
from notify.web.console.common import FormText, console_page, gate, refused
from notify.web.state import web_state

router = APIRouter(prefix="/console", include_in_schema=False)
SHOWN_ERRORS = 50
# The checked text goes back in the confirmation form, where each field may hold 1 MiB once
# URL-encoded (up to three bytes for one): a file of this size always fits.
MAX_UPLOAD_BYTES = 256 * 1024


def _format(filename: str) -> Format:
    return "jsonl" if filename.lower().endswith((".jsonl", ".ndjson")) else "csv"


def _page(
    request: Request, signed: sessions.SignedIn, *, status: int = 200, **extra: object
) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        reaches = [
            (category.label, reach(session, category.key, state.settings.default_subscriptions))
            for category in non_essential()
        ]
    context = {"reaches": reaches, "shown_errors": SHOWN_ERRORS, **extra}
    return console_page(request, "audience.html", context, signed=signed, status_code=status)


@router.get("/audience")
def audience(request: Request) -> Response:
    with web_state(request).sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
    return _page(request, signed)


def _run(request: Request, text: str, fmt: Format, *, check_only: bool) -> ImportResult:
    state = web_state(request)
    return import_users(
        state.sessions,
        text.splitlines(),
        fmt,
        hash_key=state.settings.hash_key,
        check_only=check_only,
    )


@router.post("/audience/check")
def check_upload(
    request: Request,
    file: Annotated[UploadFile | None, File()] = None,
    csrf: FormText = "",
) -> Response:
    """Every line checked, nothing written: the errors by line, and a button to import."""
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
    if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
        return refused(request)
    if file is None:
        return _page(request, signed, problem="Choose a file to check.", status=400)
    raw = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        problem = (
            f"The file is larger than {MAX_UPLOAD_BYTES // 1024} KiB, the most the console "
            "takes; import it with `notify users import` or POST /v1/users/import."
        )
        return _page(request, signed, problem=problem, status=413)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _page(request, signed, problem="The file is not UTF-8 text.", status=400)
    fmt = _format(file.filename or "")
    result = _run(request, text, fmt, check_only=True)
    return _page(request, signed, checked=result, text=text, fmt=fmt, filename=file.filename)


@router.post("/audience/import")
def confirm_upload(
    request: Request, text: FormText = "", fmt: FormText = "csv", csrf: FormText = ""
) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
    if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
        return refused(request)
    chosen: Format = "jsonl" if fmt == "jsonl" else "csv"
    result = _run(request, text, chosen, check_only=False)
    with state.sessions.begin() as session:
        audit.record(
            session, "audience.import", None, operator=signed.operator,
            imported=result.imported, rejected=result.rejected,
        )  # fmt: skip
    return _page(request, signed, imported=result)
