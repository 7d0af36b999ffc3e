"""Checking a status callback notify sent (Standard Webhooks headers) before trusting it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from notify.producers.callbacks.signing import verify


class InvalidCallbackError(ValueError):
    """The body was not signed with any of the given secrets within the last five minutes, or
    is not an event."""


def verify_callback(
    headers: Mapping[str, str], body: bytes | str, secrets: Iterable[str]
) -> dict[str, Any]:
    """The event (``{"type", "timestamp", "data"}``) if ``body`` with ``headers`` was signed
    with one of ``secrets`` (pass both while rotating); raises :class:`InvalidCallbackError`
    otherwise. ``webhook-id`` identifies the event: a repeated one is the same event again."""
    if not verify(headers, body, list(secrets)):
        raise InvalidCallbackError("the callback's signature does not verify with these secrets")
    try:
        event = json.loads(body)
    except ValueError:
        raise InvalidCallbackError("the callback's body is not JSON") from None
    if not isinstance(event, dict) or "type" not in event or "data" not in event:
        raise InvalidCallbackError("the callback's body is not an event")
    return event
