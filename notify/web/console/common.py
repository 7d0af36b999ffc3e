"""What every console page shares: rendering with the signed-in operator and a CSRF token,
the sign-in and role gate, and the answer to a form without a valid token."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from notify.web.console import sessions
from notify.web.console.sessions import SignedIn
from notify.web.pages import page
from notify.web.state import web_state

FormText = Annotated[str, Form()]


def console_page(
    request: Request,
    name: str,
    context: dict[str, Any],
    signed: SignedIn | None = None,
    status_code: int = 200,
) -> Response:
    settings = web_state(request).settings
    full: dict[str, Any] = {"signed": signed, "csrf": ""}
    if signed is not None:
        full["csrf"] = sessions.csrf_token(settings, signed.nonce)
    full.update(context)
    return page(request, f"console/{name}", full, status_code=status_code)


def gate(request: Request, session: Session, *, admin: bool = False) -> SignedIn | Response:
    """The signed-in operator, or the answer to give instead (sign in first; admins only)."""
    signed = sessions.signed_in(request, session, web_state(request).settings)
    if signed is None:
        target = quote(request.url.path, safe="/")
        return RedirectResponse(f"/console/login?next={target}", status_code=303)
    if admin and not signed.is_admin:
        return console_page(request, "denied.html", {}, signed=signed, status_code=403)
    return signed


def refused(request: Request) -> Response:
    return page(request, "console/denied.html", {"signed": None, "csrf": "", "why": "form"}, 403)
