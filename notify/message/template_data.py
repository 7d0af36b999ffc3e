"""Checks of the data a producer or a campaign sends for a template, before anything is stored.

Pure: raises :class:`InvalidFieldError` with the JSON path of the first bad field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from notify.message.mime import has_header_break
from notify.message.templates import EmailTemplate

MAX_SUBJECT_VARIABLE = 300


@dataclass(eq=False)
class InvalidFieldError(Exception):  # not frozen: raising sets __traceback__
    """Bad input, found before anything is stored. ``loc`` is the JSON path of the field."""

    loc: tuple[str, ...]
    msg: str


def check_data(template: EmailTemplate, data: dict[str, Any], max_bytes: int) -> None:
    """Raise :class:`InvalidFieldError` for the first thing wrong with ``data`` for ``template``."""
    size = len(json.dumps(data, separators=(",", ":"), default=str).encode("utf-8"))
    if size > max_bytes:
        raise InvalidFieldError(("data",), f"is {size} bytes; at most {max_bytes} are allowed")
    for name in template.variables:
        if name not in data:
            raise InvalidFieldError(("data", name), f"is required by template {template.name}")
    for name in template.subject_variables:
        value = data.get(name)
        if isinstance(value, str) and has_header_break(value):
            raise InvalidFieldError(
                ("data", name), "goes into the subject and must not hold line breaks"
            )
        if isinstance(value, str) and len(value) > MAX_SUBJECT_VARIABLE:
            raise InvalidFieldError(
                ("data", name), f"goes into the subject: at most {MAX_SUBJECT_VARIABLE} characters"
            )
    for name in template.url_variables:
        value = data.get(name)
        if not isinstance(value, str) or not value.startswith("https://"):
            raise InvalidFieldError(("data", name), "must be an absolute https:// URL")
