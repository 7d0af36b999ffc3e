"""Helpers that keep personal data out of logs. Pure."""

from __future__ import annotations


def mask_email(address: str) -> str:
    """``ada@example.com`` → ``a***@example.com``; anything unparsable becomes ``***``."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return "***"
    return f"{local[0]}***@{domain}"
