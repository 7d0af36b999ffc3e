"""Rendering the public pages (unsubscribe, preferences): one template set, private headers."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates

from notify.message.templates import TEMPLATES_ROOT
from notify.web.state import web_state

templates = Jinja2Templates(directory=str(TEMPLATES_ROOT / "pages"))

# Never cached, never indexed, never leaked through a Referer (the URL holds a token).
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    settings = web_state(request).settings
    full = {"company_name": settings.company_name, "postal_address": settings.postal_address}
    full.update(context)
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    response.headers.update(PRIVATE_HEADERS)
    return response


def invalid_link(request: Request) -> Response:
    """The one answer for a forged, tampered, truncated or unknown token: no detail, no address."""
    return page(request, "link_invalid.html", {}, status_code=404)
