"""Rendering the public pages (unsubscribe, preferences) and the console: one template set per
shipped language, private headers.

A page is in the language of the person its link names (their stored locale along its chain,
:mod:`notify.i18n.locales`); without one, or on a page that names nobody, in the best match for
the browser's ``Accept-Language``; then the service's default locale; then English. The answer
says which in ``Content-Language`` and the page in ``<html lang>``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from notify.i18n.jinja import I18N_EXTENSION, localise
from notify.i18n.locales import negotiated, shipped
from notify.message.templates import TEMPLATES_ROOT
from notify.web.state import web_state

PAGES_ROOT = TEMPLATES_ROOT / "pages"

# Never cached, never indexed, never leaked through a Referer (the URL holds a token).
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


@cache
def templates_for(locale: str) -> Jinja2Templates:
    """The page templates in shipped ``locale`` (built once per locale)."""
    environment = Environment(
        loader=FileSystemLoader(str(PAGES_ROOT)),
        autoescape=select_autoescape(),
        extensions=[I18N_EXTENSION],
    )
    return Jinja2Templates(env=localise(environment, locale))


def page_locale(request: Request, person_locale: str | None = None) -> str:
    """The shipped locale a page is shown in (see the module's docstring)."""
    default = web_state(request).settings.default_locale
    if person_locale:
        return shipped(person_locale, default)
    return negotiated(request.headers.get("accept-language"), default)


def page(
    request: Request,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
    *,
    person_locale: str | None = None,
) -> Response:
    """Page ``name`` for the person whose stored locale is ``person_locale`` (None: nobody
    known, or no locale stored)."""
    settings = web_state(request).settings
    locale = page_locale(request, person_locale)
    full = {"company_name": settings.company_name, "postal_address": settings.postal_address}
    full.update(context)
    response = templates_for(locale).TemplateResponse(request, name, full, status_code=status_code)
    response.headers.update(PRIVATE_HEADERS)
    response.headers["Content-Language"] = locale
    response.headers["Vary"] = "Accept-Language"
    return response


def invalid_link(request: Request) -> Response:
    """The one answer for a forged, tampered, truncated or unknown token: no detail, no address."""
    return page(request, "link_invalid.html", {}, status_code=404)
