"""``/dev/mailbox``: lists and renders the local mailbox's ``.eml`` files (development only).

Mounted only in development with a ``file://`` mailbox (:func:`pages_on`), and answered only to
loopback clients (127.0.0.0/8, ::1): any other client gets 404, as if the pages did not exist,
even when ``notify web`` binds a public address.
"""

from __future__ import annotations

import email
import ipaddress
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from notify.config import Settings
from notify.message.templates import TEMPLATES_ROOT
from notify.web.state import web_state


def pages_on(settings: Settings) -> bool:
    """Whether the app serves the mailbox pages: development, with a ``file://`` mailbox."""
    return settings.smtp.is_mailbox and settings.env == "development"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or ``localhost``) is this machine: 127.0.0.0/8 or ::1."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _loopback_client(request: Request) -> None:
    client = request.client
    if client is None or not is_loopback(client.host):
        raise HTTPException(404, "Not Found")


router = APIRouter(
    prefix="/dev/mailbox", include_in_schema=False, dependencies=[Depends(_loopback_client)]
)
pages = Jinja2Templates(directory=str(TEMPLATES_ROOT / "pages"))
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._@-]+\.eml$")


def _folder(request: Request) -> Path:
    return web_state(request).settings.smtp.mailbox


def _read(path: Path) -> EmailMessage:
    message: EmailMessage = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    return message


def _message_path(request: Request, name: str) -> Path:
    path = _folder(request) / name
    if not _SAFE_NAME.match(name) or not path.is_file():
        raise HTTPException(404, "no such message")
    return path


@router.get("", response_class=HTMLResponse)
def list_messages(request: Request) -> Response:
    folder = _folder(request)
    files = sorted(folder.glob("*.eml"), key=lambda path: path.stat().st_mtime, reverse=True)
    messages: list[dict[str, Any]] = []
    for path in files[:200]:
        parsed = _read(path)
        received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        messages.append(
            {
                "name": path.name,
                "to": parsed["To"],
                "subject": parsed["Subject"],
                "received": received.strftime("%Y-%m-%d %H:%M:%S UTC"),
            }
        )
    context = {"messages": messages, "folder": str(folder)}
    return pages.TemplateResponse(request, "mailbox_list.html", context)


@router.get("/{name}", response_class=HTMLResponse)
def show_message(request: Request, name: str) -> Response:
    parsed = _read(_message_path(request, name))
    text_part = parsed.get_body(("plain",))
    html_part = parsed.get_body(("html",))
    context = {
        "name": name,
        "subject": parsed["Subject"],
        "headers": list(parsed.items()),
        "text": text_part.get_content() if text_part else "",
        "html": html_part.get_content() if html_part else "",
    }
    return pages.TemplateResponse(request, "mailbox_message.html", context)


@router.get("/{name}/raw")
def raw_message(request: Request, name: str) -> Response:
    return Response(_message_path(request, name).read_bytes(), media_type="text/plain")
