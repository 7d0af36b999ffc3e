"""Checks of single values shared by the API, the CLI and imports. Pure."""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from notify.message.mime import has_header_break

_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
CONTROL_CHARACTERS = r"\x00-\x1f\x7f"  # C0 controls (line breaks, tab, NUL) and DEL
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def normalised_email(value: str) -> str:
    """Syntax and IDNA check without DNS (no network on the hot path); returns the normal form."""
    if has_header_break(value):
        raise ValueError("must not contain line breaks")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(str(error)) from None


@lru_cache(maxsize=1024)
def _zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def known_timezone(value: str) -> str:
    if not _zone_exists(value):
        raise ValueError("is not an IANA time zone such as Europe/London")
    return value


def locale_tag(value: str) -> str:
    if not _LOCALE.fullmatch(value):
        raise ValueError("is not a language tag such as en or pt-BR")
    return value


def one_line_text(value: str) -> str:
    """Text that can go into a subject line: no line breaks, tabs or other control
    characters; surrounding spaces are dropped."""
    if _CONTROL.search(value):
        raise ValueError("must be one line of text without control characters")
    return value.strip()
