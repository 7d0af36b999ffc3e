"""Lenient form parsing for the public POST endpoints.

RFC 8058 clients send ``application/x-www-form-urlencoded`` (``List-Unsubscribe=One-Click``),
some send ``multipart/form-data`` and some send nothing at all; a body we cannot parse is read
as empty rather than refused.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from fastapi import Request
from starlette.exceptions import HTTPException

from notify.web.body_limit import is_one_click

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 16_384


async def lenient_form(request: Request) -> dict[str, list[str]]:
    """Field name → values; ``{}`` for an empty, oversized or unparsable body (a multipart body
    with a file or more than 50 fields included). A body past the app's streaming limit
    (``notify.web.body_limit``) is read as empty on the one-click endpoint, where RFC 8058 says
    any body unsubscribes; elsewhere its 413 propagates and nothing is changed (an empty
    preference form would read as "turn everything off")."""
    content_type = request.headers.get("content-type", "").lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return {}  # never read a large body from an unauthenticated client
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=0, max_fields=50)
            fields: dict[str, list[str]] = {}
            for key, value in form.multi_items():
                if isinstance(value, str):
                    fields.setdefault(key, []).append(value)
            return fields
        body = await request.body()
    except HTTPException as error:
        if error.status_code == 413 and not is_one_click(request.scope):
            raise  # the body limit: the request stops here and nothing is changed
        # The limit on the one-click endpoint, or Starlette's 400 for a multipart body past
        # max_files or max_fields: unreadable here, so read as empty.
        log.info("unreadable form body ignored: %s", error.status_code)
        return {}
    except Exception as error:  # a broken body must not stop an unsubscribe
        log.info("unparsable form body ignored: %s", type(error).__name__)
        return {}
    if len(body) > MAX_BODY_BYTES:
        return {}
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
