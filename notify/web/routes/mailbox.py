"""``/dev/mailbox``: lists and renders the local mailbox's ``.eml`` files (development only).

Mounted only in development with a ``file://`` mailbox (:func:`pages_on`), and answered only to
loopback clients (127.0.0.0/8, ::1): any other client gets 404, as if the pages did not exist,
even when ``notify web`` binds a public address.

A developer can walk a whole flow from here: every link of a captured email opens in a new tab,
outside the frame, where the page it leads to works as in a mail client (the unsubscribe
page's buttons included). The email's HTML stays sandboxed: no scripts, no forms, no access to
this page (:data:`FRAME_SANDBOX`). URLs in the text part are links too (:func:`linked_text`).
"""

from __future__ import annotations

import email
import ipaddress
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

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


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


def addressed_to_this_machine(host_header: str) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name. A page elsewhere that
    points its own domain at 127.0.0.1 (DNS rebinding) sends its own domain here, not these."""
    host = host_header.strip().lower()
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name in LOOPBACK_NAMES


def _loopback_client(request: Request) -> None:
    """The mailbox shows whole messages with working links: only to a loopback client that
    addressed this machine by a loopback name; 404 for everyone else."""
    client = request.client
    if client is None or not is_loopback(client.host):
        raise HTTPException(404, "Not Found")
    if not addressed_to_this_machine(request.headers.get("host", "")):
        raise HTTPException(404, "Not Found")


router = APIRouter(
    prefix="/dev/mailbox", include_in_schema=False, dependencies=[Depends(_loopback_client)]
)
pages = Jinja2Templates(directory=str(TEMPLATES_ROOT / "pages"))
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._@-]+\.eml$")

# The frame may open links in a new tab that is not sandboxed; nothing else: no scripts, no
# forms, no plugins, and an opaque origin (no access to this page or its cookies).
FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
# Put first in the framed document's head: every link opens in a new tab, scripts never run.
FRAME_POLICY = "script-src 'none'; object-src 'none'"
FRAME_HEAD = (
    f'<base target="_blank"><meta http-equiv="Content-Security-Policy" content="{FRAME_POLICY}">'
)
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_HTML = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_URL_TRAILER = ".,;:!?)]}"


def framed_html(html: str) -> str:
    """``html`` as the mailbox frame shows it: :data:`FRAME_HEAD` goes right after the opening
    ``<head>`` tag (or ``<html>``, or at the very start), so it precedes every link and script of
    the email. The email's own markup is otherwise unchanged."""
    match = _HEAD.search(html) or _HTML.search(html)
    at = match.end() if match else 0
    return f"{html[:at]}{FRAME_HEAD}{html[at:]}"


def linked_text(text: str) -> Markup:
    """``text`` escaped for HTML, with each ``http://`` or ``https://`` URL made a link that opens
    in a new tab. Punctuation that ends a sentence (``.``, ``,``, ``)``…) is left out of a URL."""
    pieces: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group().rstrip(_URL_TRAILER)
        pieces.append(escape(text[position : match.start()]))
        link = escape(url)
        pieces.append(f'<a href="{link}" target="_blank" rel="noopener noreferrer">{link}</a>')
        position = match.start() + len(url)
    pieces.append(escape(text[position:]))
    return Markup("".join(pieces))  # noqa: S704 (every piece of the input is escaped above)


def _folder(request: Request) -> Path:
    return web_state(request).settings.smtp.mailbox


def _read(path: Path) -> EmailMessage:
    message: EmailMessage = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    return message


def _part_text(part: MIMEPart | None) -> str:
    """A part's text; an unknown or wrong charset is decoded as UTF-8 with replacements."""
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


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
    html = _part_text(parsed.get_body(("html",)))
    context = {
        "name": name,
        "subject": parsed["Subject"],
        "headers": list(parsed.items()),
        "text": linked_text(_part_text(parsed.get_body(("plain",)))),
        "html": framed_html(html) if html else "",
        "sandbox": FRAME_SANDBOX,
    }
    return pages.TemplateResponse(request, "mailbox_message.html", context)


@router.get("/{name}/raw")
def raw_message(request: Request, name: str) -> Response:
    return Response(_message_path(request, name).read_bytes(), media_type="text/plain")
