"""The app's OpenAPI document: FastAPI's, plus the limits that are settings.

FastAPI builds the document from the routes, which know nothing of settings. :func:`install`
adds, once per app, what :class:`notify.web.body_limit.BodyLimit` enforces with this app's
settings: the byte limit in each operation's 413, and the largest import body as a
``maxLength`` of the import's text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from notify.config import Settings
from notify.web.body_limit import BULK_ROUTES

IMPORT_PATH = "/v1/users/import"
# A character takes at most 4 bytes of UTF-8: a text of this many characters always fits.
UTF8_MAX_BYTES = 4


def body_limit(settings: Settings, method: str, path: str) -> int:
    """The most bytes of body ``method path`` (a path of the document) takes, as BodyLimit
    enforces it."""
    bulk = (method.upper(), path) in BULK_ROUTES
    return settings.max_import_bytes if bulk else settings.max_body_bytes


def add_limits(document: dict[str, Any], settings: Settings) -> None:
    """Write the limits of ``settings`` into ``document`` (in place): each 413 names its byte
    limit; the import's body, a text, has a ``maxLength`` that never exceeds its byte limit."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            limit = body_limit(settings, method, path)
            too_large = operation.get("responses", {}).get("413")
            if too_large is not None:
                too_large["description"] = (
                    f"The body is larger than {limit} bytes, the most this operation accepts. "
                    "The connection is closed."
                )
            if path == IMPORT_PATH and method == "post":
                body = operation["requestBody"]
                body["description"] = (
                    f"At most {limit} bytes of UTF-8 (NOTIFY_MAX_IMPORT_BYTES). ``maxLength`` "
                    "counts characters, so it is the length that fits however many bytes each "
                    "character takes."
                )
                for content in body["content"].values():
                    content["schema"]["maxLength"] = limit // UTF8_MAX_BYTES


def install(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json``) return FastAPI's document with the
    limits of ``settings`` added; built on the first call and kept."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_limits(build(), settings)
        return build()  # FastAPI's own: it keeps the document it built and returns it again

    app.openapi = document  # type: ignore[method-assign]
