"""The console's pages: sign-in and setup, campaigns (list, detail, schedule, pause, resume,
cancel with a confirmation), and for admins operators and the audit log.

Every page but sign-in and setup needs a signed-in operator (else 303 to sign-in); admin pages
answer 403 to marketing. Every POST checks its CSRF token (403 without a valid one) before
anything else. State changes go through the same functions as the API and are audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from notify.campaigns import changes, lifecycle
from notify.campaigns.audience import AudienceFilter, audience_size
from notify.campaigns.changes import ACTIONS
from notify.campaigns.lifecycle import CampaignStateError
from notify.models import Campaign, CampaignStatus, Operator, OperatorRole
from notify.operators import accounts, audit
from notify.producers.api_keys import SCOPES, UnknownScopeError, create_key, list_keys, revoke
from notify.web.console import sessions
from notify.web.console.common import FormText, console_page, gate, refused
from notify.web.console.sessions import SignedIn
from notify.web.state import web_state

router = APIRouter(prefix="/console", include_in_schema=False)
CONFIRMATION = {
    "schedule": "Schedule this campaign? It starts at its send time and reaches {n} people.",
    "pause": "Pause this campaign? {n} messages wait until you resume it.",
    "resume": "Resume this campaign? It goes on with the {n} messages still to send.",
    "cancel": "Cancel this campaign? The {n} messages not yet sent will never be sent.",
}
# Which actions each status allows (the domain refuses the others with a readable reason).
ALLOWED = {
    CampaignStatus.DRAFT: ("schedule", "cancel"),
    CampaignStatus.NEEDS_CONFIRMATION: ("schedule", "cancel"),
    CampaignStatus.SCHEDULED: ("pause", "cancel"),
    CampaignStatus.RUNNING: ("pause", "cancel"),
    CampaignStatus.PAUSED: ("resume", "cancel"),
    CampaignStatus.NEEDS_ATTENTION: ("resume", "cancel"),
}


# --- signing in ------------------------------------------------------------------------------


@router.get("")
def console_home() -> Response:
    return RedirectResponse("/console/campaigns", status_code=303)


def _safe_next(target: str | None) -> str:
    """Only a console path of this site (never another host after sign-in)."""
    if target and target.startswith("/console/") and "//" not in target and "\\" not in target:
        return target
    return "/console/campaigns"


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:
    first = Response()
    nonce = sessions.form_nonce(request, first, web_state(request).settings)
    return _with_form_token(request, first, "login.html", {"next": _safe_next(next)}, nonce)


def _with_form_token(
    request: Request,
    first: Response,
    name: str,
    context: dict[str, Any],
    nonce: str,
    status_code: int = 200,
) -> Response:
    """Render ``name`` with a CSRF token for ``nonce``, keeping the cookies ``first`` set."""
    settings = web_state(request).settings
    response = console_page(
        request,
        name,
        {**context, "csrf": sessions.csrf_token(settings, nonce)},
        status_code=status_code,
    )
    for header, value in first.raw_headers:
        if header == b"set-cookie":
            response.raw_headers.append((header, value))
    return response


@router.post("/login")
def login(
    request: Request,
    email: FormText = "",
    password: FormText = "",
    csrf: FormText = "",
    next: FormText = "",
) -> Response:
    state = web_state(request)
    settings = state.settings
    if not sessions.csrf_ok(settings, sessions.posted_form_nonce(request, settings), csrf):
        return refused(request)
    client = request.client.host if request.client else "unknown"
    if not state.console_throttle.allow(email or "-", client):
        first = Response()
        nonce = sessions.form_nonce(request, first, settings)
        context = {"next": _safe_next(next), "error": "throttled"}
        response = _with_form_token(request, first, "login.html", context, nonce, 429)
        response.headers["Retry-After"] = "60"
        return response
    with state.sessions.begin() as session:
        operator = accounts.authenticate(session, email, password)
        if operator is not None:
            audit.record(session, "operator.sign_in", f"operator:{operator.id}", operator=operator)
    if operator is None:
        first = Response()
        nonce = sessions.form_nonce(request, first, settings)
        context = {"next": _safe_next(next), "error": "wrong", "email": email[:320]}
        return _with_form_token(request, first, "login.html", context, nonce, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    sessions.start(response, settings, operator)
    return response


@router.post("/logout")
def logout(request: Request, csrf: FormText = "") -> Response:
    state = web_state(request)
    with state.sessions.begin() as session:
        signed = sessions.signed_in(request, session, state.settings)
        if signed is None:
            return RedirectResponse("/console/login", status_code=303)
        if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
            return refused(request)
        accounts.end_sessions(session, signed.operator)
        audit.record(session, "operator.sign_out", operator=signed.operator)
    response = RedirectResponse("/console/login", status_code=303)
    sessions.end(response, state.settings)
    return response


@router.get("/setup/{token}")
def setup_form(request: Request, token: str) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        operator = accounts.by_setup_token(session, token)
    if operator is None:
        return console_page(request, "setup_invalid.html", {}, status_code=404)
    first = Response()
    nonce = sessions.form_nonce(request, first, state.settings)
    return _with_form_token(request, first, "setup.html", {"email": operator.email}, nonce)


@router.post("/setup/{token}")
def setup(
    request: Request, token: str, password: FormText = "", again: FormText = "", csrf: FormText = ""
) -> Response:
    state = web_state(request)
    settings = state.settings
    if not sessions.csrf_ok(settings, sessions.posted_form_nonce(request, settings), csrf):
        return refused(request)
    with state.sessions.begin() as session:
        operator = accounts.by_setup_token(session, token)
        if operator is None:
            return console_page(request, "setup_invalid.html", {}, status_code=404)
        problem = accounts.password_problem(password)
        if problem is None and password != again:
            problem = "and its repetition differ"
        if problem is not None:
            first = Response()
            nonce = sessions.form_nonce(request, first, settings)
            context = {"email": operator.email, "error": f"The password {problem}."}
            return _with_form_token(request, first, "setup.html", context, nonce, 400)
        accounts.set_password(session, operator, password)
        audit.record(session, "operator.set_password", f"operator:{operator.id}", operator=operator)
        response = RedirectResponse("/console/campaigns", status_code=303)
        sessions.start(response, settings, operator)
    return response


# --- campaigns -------------------------------------------------------------------------------


def _affected(session: Session, campaign: Campaign, action: str, defaults: frozenset[str]) -> int:
    """How many people an action concerns: for a schedule the audience as it stands; else the
    messages still to send, planned or not yet planned."""
    narrow = AudienceFilter.from_json(campaign.audience)
    if action == "schedule":
        return audience_size(session, campaign.category, defaults, narrow)
    pending = lifecycle.progress(session, campaign.id).counts["pending"]
    if campaign.planning_done:
        return pending
    after = campaign.planned_through
    return pending + audience_size(session, campaign.category, defaults, narrow, after=after)


@router.get("/campaigns")
def campaign_list(request: Request) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        rows = []
        for campaign in session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(200)):
            counts = lifecycle.progress(session, campaign.id).counts
            total = sum(counts.values())
            done = total - counts["pending"]
            rows.append({"campaign": campaign, "done": done, "total": total})
        return console_page(request, "campaigns.html", {"rows": rows}, signed=signed)


@router.get("/campaigns/{campaign_id}")
def campaign_detail(request: Request, campaign_id: int) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            return console_page(request, "missing.html", {}, signed=signed, status_code=404)
        progress = lifecycle.progress(session, campaign_id)
        per_minute = lifecycle.sent_per_minute(session, campaign_id)
        suppressed = lifecycle.suppressed_by_reason(session, campaign_id)
        context = {
            "campaign": campaign,
            "progress": progress,
            "per_minute": per_minute,
            "suppressed": suppressed,
            "per_minute_peak": max((count for _, count in per_minute), default=0) or 1,
            "total": sum(progress.counts.values()),
            "actions": ALLOWED.get(campaign.status, ()),
        }
        return console_page(request, "campaign.html", context, signed=signed)


@router.get("/campaigns/{campaign_id}/{action}")
def confirm_action(request: Request, campaign_id: int, action: str) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        campaign = session.get(Campaign, campaign_id)
        if campaign is None or action not in ACTIONS:
            return console_page(request, "missing.html", {}, signed=signed, status_code=404)
        affected = _affected(session, campaign, action, state.settings.default_subscriptions)
        context = {
            "campaign": campaign,
            "action": action,
            "question": CONFIRMATION[action].format(n=f"{affected:,}"),
        }
        return console_page(request, "confirm.html", context, signed=signed)


@router.post("/campaigns/{campaign_id}/{action}")
def apply_action(request: Request, campaign_id: int, action: str, csrf: FormText = "") -> Response:
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
    if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
        return refused(request)
    if action not in ACTIONS:
        return console_page(request, "missing.html", {}, signed=signed, status_code=404)
    try:
        changes.change(
            state.sessions,
            state.settings,
            state.celery,
            campaign_id,
            action,
            operator=signed.operator,
        )
    except changes.NoSuchCampaignError:
        return console_page(request, "missing.html", {}, signed=signed, status_code=404)
    except CampaignStateError as error:
        context = {"why": str(error), "campaign_id": campaign_id}
        return console_page(request, "refused.html", context, signed=signed, status_code=409)
    return RedirectResponse(f"/console/campaigns/{campaign_id}", status_code=303)


# --- admins: operators and the audit log -----------------------------------------------------


def _operators_page(request: Request, session: Session, signed: SignedIn, **extra: Any) -> Response:
    operators = session.scalars(select(Operator).order_by(Operator.id)).all()
    # Operators are staff, not recipients: an admin needs their addresses to manage them.
    shown = [
        {"id": o.id, "email": o.email, "role": o.role.value, "ready": bool(o.password_hash)}
        for o in operators
    ]
    context = {"operators": shown, "roles": [role.value for role in OperatorRole], **extra}
    status = 400 if extra.get("error") else 200
    return console_page(request, "operators.html", context, signed=signed, status_code=status)


@router.get("/operators")
def operator_list(request: Request) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session, admin=True)
        if isinstance(signed, Response):
            return signed
        return _operators_page(request, session, signed)


@router.post("/operators")
def operator_create(
    request: Request, email: FormText = "", role: FormText = "", csrf: FormText = ""
) -> Response:
    state = web_state(request)
    with state.sessions.begin() as session:
        signed = gate(request, session, admin=True)
        if isinstance(signed, Response):
            return signed
        if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
            return refused(request)
        try:
            link = accounts.create(session, email, role)
        except accounts.OperatorError as error:
            return _operators_page(request, session, signed, error=str(error))
        audit.record(
            session, "operator.create", f"operator:{link.operator_id}", operator=signed.operator,
            role=role,
        )  # fmt: skip
        url = f"{state.settings.public_url}/console/setup/{link.token}"
        return _operators_page(request, session, signed, setup_url=url)


@router.get("/audit")
def audit_log(request: Request) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session, admin=True)
        if isinstance(signed, Response):
            return signed
        entries = audit.recent(session, 200)
        return console_page(request, "audit.html", {"entries": entries}, signed=signed)


def _keys_page(request: Request, session: Session, signed: SignedIn, **extra: Any) -> Response:
    context = {"keys": list_keys(session), "scopes": sorted(SCOPES), **extra}
    status = 400 if extra.get("error") else 200
    return console_page(request, "keys.html", context, signed=signed, status_code=status)


@router.get("/keys")
def key_list(request: Request) -> Response:
    with web_state(request).sessions() as session:
        signed = gate(request, session, admin=True)
        if isinstance(signed, Response):
            return signed
        return _keys_page(request, session, signed)


@router.post("/keys")
async def key_create(request: Request) -> Response:
    """A new key; its secret is shown on this one page and never again. The form's scopes
    are checkboxes, so they are read from the form as a list."""
    form = await request.form(max_files=0, max_fields=50)
    return await run_in_threadpool(
        _create_key,
        request,
        str(form.get("csrf", "")),
        str(form.get("name", "")),
        [str(value) for value in form.getlist("scope")],
    )


def _create_key(request: Request, csrf: str, name: str, scopes: list[str]) -> Response:
    state = web_state(request)
    with state.sessions.begin() as session:
        signed = gate(request, session, admin=True)
        if isinstance(signed, Response):
            return signed
        if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
            return refused(request)
        if not name.strip() or len(name) > 100 or "\x00" in name:
            return _keys_page(request, session, signed, error="Give the key a name (100 at most).")
        if not scopes:
            return _keys_page(request, session, signed, error="Choose at least one scope.")
        try:
            key, secret = create_key(session, name.strip(), scopes)
        except UnknownScopeError as error:
            return _keys_page(request, session, signed, error=str(error))
        audit.record(
            session, "key.create", f"key:{key.id}", operator=signed.operator, scopes=key.scopes
        )
        return _keys_page(request, session, signed, secret=secret, created=key)


@router.post("/keys/{key_id}/revoke")
def key_revoke(request: Request, key_id: int, csrf: FormText = "") -> Response:
    state = web_state(request)
    with state.sessions.begin() as session:
        signed = gate(request, session, admin=True)
        if isinstance(signed, Response):
            return signed
        if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
            return refused(request)
        if revoke(session, key_id):
            audit.record(session, "key.revoke", f"key:{key_id}", operator=signed.operator)
    return RedirectResponse("/console/keys", status_code=303)
