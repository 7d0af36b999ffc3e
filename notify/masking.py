"""Helpers that keep personal data out of logs. Pure."""

from __future__ import annotations

import re


def mask_email(address: str) -> str:
    """``ada@example.com`` → ``a***@example.com``; anything unparsable becomes ``***``."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return "***"
    return f"{local[0]}***@{domain}"


_TOKEN_PATH = re.compile(r"^/(u|preferences)/[^/]+")


def redact_path(path: str) -> str:
    """A request path fit for a log line: the token in ``/u/…`` and ``/preferences/…`` hidden."""
    return _TOKEN_PATH.sub(lambda match: f"/{match.group(1)}/[token]", path)


_ADDRESS = re.compile(r"[^\s<>\"'@]+@[^\s<>\"']+")


def mask_addresses(text: str) -> str:
    """Free text (a relay's reply, a report's detail) with every address in it masked."""
    return _ADDRESS.sub(lambda match: mask_email(match.group(0)), text)[:500]
