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
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
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
    """True if ``value``, or what its RFC 2047 encoded-words decode to, holds a line break.

    The stdlib decodes encoded-words when a header is set and (before 3.11.10) writes a decoded
    CR/LF out raw, so ``=?UTF-8?Q?=0D=0ABcc:_x?=`` would add a header; an encoded-word that does
    not decode counts as a break too.
    """
    if HEADER_BREAKS.search(value):
        return True
    if "=?" not in value:
        return False
    try:
        decoded = str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return True
    return HEADER_BREAKS.search(decoded) is not None


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


class VerbatimHeader(str):
    """A header value written exactly as given: never folded, never RFC 2047-encoded.

    ``List-Unsubscribe`` must reach the mailbox provider byte for byte (a folded or encoded URL
    breaks one-click unsubscribe), so it is stored with ``set_raw`` as one of these; the email
    policy calls :meth:`fold` instead of refolding it.
    """

    name: str

    def __new__(cls, name: str, value: str) -> VerbatimHeader:
        if not value.isascii() or has_header_break(value) or len(name) + len(value) > 990:
            raise HeaderInjectionError(f"{name} must be one short ASCII line")
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy: policy.Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


def _set_subject(message: EmailMessage, subject: str, international: bool) -> None:
    """Set Subject, pre-encoding a non-ASCII one ourselves.

    Python 3.11.7's header folder can drop the space between two adjacent encoded-words, so a
    long accented subject would come back with words glued together; ``email.header.Header``
    splits on character boundaries with the spaces inside the encoded text, each word within 75
    characters, and ``set_raw`` stores that without a second fold.
    """
    if subject.isascii() or international:
        message["Subject"] = subject
        return
    encoded = Header(subject, "utf-8", maxlinelen=76, header_name="Subject").encode(linesep="\n")
    message.set_raw("Subject", encoded)


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
    unsubscribe_url: str | None = None,
    list_id: str | None = None,
) -> EmailMessage:
    """One message to one recipient; raises :class:`HeaderInjectionError` on a bad value.

    A recipient with a non-ASCII local part gets a message with an SMTPUTF8 (``utf8``) policy,
    so the address is never RFC 2047-encoded (only a relay offering SMTPUTF8 can take it).
    """
    to = ascii_address(_checked("To", recipient))
    international = needs_smtputf8(to)
    message = EmailMessage(
        policy=MESSAGE_POLICY.clone(utf8=True) if international else MESSAGE_POLICY
    )
    message["From"] = _checked("From", sender)
    message["To"] = to if international else Address(addr_spec=to)
    _set_subject(message, _checked("Subject", rendered.subject), international)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = _checked("Message-ID", message_id)
    message["Auto-Submitted"] = "auto-generated"
    for name, value in extra_headers.items():
        message[_checked("header name", name)] = _checked(name, value)
    if unsubscribe_url is not None:
        # RFC 8058: exactly one of each, the https URL only (no mailto without an inbound handler).
        unsubscribe = VerbatimHeader("List-Unsubscribe", f"<{unsubscribe_url}>")
        message.set_raw("List-Unsubscribe", unsubscribe)
        one_click = VerbatimHeader("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        message.set_raw("List-Unsubscribe-Post", one_click)
    if list_id is not None:
        message["List-Id"] = _checked("List-Id", list_id)
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return message
