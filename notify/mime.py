"""Builds the MIME message from a rendered email. Pure: no I/O.

Guarantees: ``multipart/alternative`` with text first and HTML last; one ``From``, ``To``,
``Subject``, ``Date``, ``Message-ID``; ``Auto-Submitted: auto-generated``; no header value can
carry a line break (item 101 of the standards); non-ASCII subjects and names are RFC 2047
encoded by the stdlib ``email`` policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import idna

from notify.rendering import RenderedEmail

# CR, LF, NUL, vertical tab, form feed, NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR.
HEADER_BREAKS = re.compile("[\r\n\x00\x0b\x0c\x85\u2028\u2029]")
MESSAGE_POLICY = policy.SMTP  # CRLF line endings

# Python 3.11.10+ also refuses unsafely folded headers when serialising (CVE-2024-6923). Older
# 3.11 builds (3.11.7 on our machines) lack that, so HEADER_BREAKS is checked on every value
# here whatever the runtime; docs/decisions.md records this.
STDLIB_VERIFIES_HEADERS = bool(getattr(policy.default, "verify_generated_headers", False))


class HeaderInjectionError(ValueError):
    """A value meant for a header contains a line break or NUL."""


def has_header_break(value: str) -> bool:
    return HEADER_BREAKS.search(value) is not None


def _checked(name: str, value: str) -> str:
    if has_header_break(value):
        raise HeaderInjectionError(f"{name} contains a line break")
    return value


def ascii_address(address: str) -> str:
    """The address with its domain as IDNA A-labels (``bücher.example`` → ``xn--bcher-kva...``)."""
    local, _, domain = address.rpartition("@")
    try:
        domain.encode("ascii")
    except UnicodeEncodeError:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    return f"{local}@{domain}"


def needs_smtputf8(address: str) -> bool:
    """True when the local part is not ASCII: only a relay with SMTPUTF8 can take it."""
    return not address.rpartition("@")[0].isascii()


def new_message_id(sending_domain: str) -> str:
    """A globally unique Message-ID on the sending domain, never the worker's host name."""
    return make_msgid(domain=sending_domain)


def build_message(
    rendered: RenderedEmail,
    *,
    sender: str,
    recipient: str,
    message_id: str,
    date: datetime,
    extra_headers: Mapping[str, str] = {},
) -> EmailMessage:
    """One message to one recipient; raises :class:`HeaderInjectionError` on a bad value."""
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["From"] = _checked("From", sender)
    to = ascii_address(_checked("To", recipient))
    message["To"] = to if needs_smtputf8(to) else Address(addr_spec=to)
    message["Subject"] = _checked("Subject", rendered.subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = _checked("Message-ID", message_id)
    message["Auto-Submitted"] = "auto-generated"
    for name, value in extra_headers.items():
        message[_checked("header name", name)] = _checked(name, value)
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return message
