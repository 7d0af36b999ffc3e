"""One definition of a user row, shared by ``PUT /v1/users/{user_id}`` and the bulk import.

A value that passes these types can be stored as it is, on SQLite and PostgreSQL alike: it is
valid Unicode (pydantic refuses lone surrogates; :class:`UserRow` also refuses a field name
holding one), it holds no NUL character, it fits its column (``user_id`` 200, ``locale`` 35,
``timezone`` 64 characters), and a number read as text is finite (never ``nan`` or ``inf``).
Addresses come back in their normal form. The single-value checks themselves live in
``notify.message.validation``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from notify.message.template_data import shown
from notify.message.validation import known_timezone, locale_tag, normalised_email

# The producer's id for a person: it appears in URL paths, so no "/", and never whitespace or
# NUL (PostgreSQL cannot store NUL in text).
UserId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s/\x00]+$")]
USER_ID_RULE = "must be 1 to 200 characters with no whitespace, '/' or NUL"
# An address, syntax-checked without DNS and normalised; NUL and line breaks are refused.
Email = Annotated[str, Field(max_length=320), AfterValidator(normalised_email)]
# A language tag such as ``en`` or ``pt-BR``.
Locale = Annotated[str, Field(max_length=35), AfterValidator(locale_tag)]
# An IANA time zone name this machine knows, such as ``Europe/London``.
Timezone = Annotated[str, Field(max_length=64), AfterValidator(known_timezone)]

_MAX_SHOWN_NAME = 40


class UserFields(BaseModel):
    """What may be set on a user: an address (required), a locale and a time zone (optional,
    ``None`` leaves the stored value). Any other field is refused."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    locale: Locale | None = None
    timezone: Timezone | None = None


class UserRow(UserFields):
    """One row of a user import: ``user_id,email,locale,timezone``.

    An empty (or absent) locale or time zone means "keep the stored one", so it becomes
    ``None``. A number is read as text (JSON lines may carry ``"user_id": 42``).
    """

    model_config = ConfigDict(coerce_numbers_to_str=True)

    user_id: UserId

    @model_validator(mode="before")
    @classmethod
    def _field_names_are_text(cls, value: Any) -> Any:
        # A JSON line may carry "\ud800" as a key: name it (escaped) instead of failing the row
        # with a message that names no field.
        if isinstance(value, dict):
            for key in value:
                name = str(key)
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError(
                        f"field name {name[:_MAX_SHOWN_NAME]!r} is not valid Unicode text"
                    ) from None
        return value

    @field_validator("user_id", "email", "locale", "timezone", mode="before")
    @classmethod
    def _finite_numbers_only(cls, value: Any) -> Any:
        # JSON lines read NaN and Infinity as floats, which would become the text "nan"/"inf".
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be text or a finite number, not NaN or Infinity")
        return value

    @field_validator("locale", "timezone", mode="before")
    @classmethod
    def _empty_keeps_stored(cls, value: Any) -> Any:
        return None if value == "" else value


def problem_line(error: ValidationError) -> str:
    """Every problem in ``error`` on one line, each as ``field: message`` (or
    ``unknown field 'x'``), joined by ``"; "``. Never contains a line break, a NUL or a lone
    surrogate, so it can always be sent back as JSON."""
    problems: list[str] = []
    for item in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"])
        kind = item["type"]
        if kind == "extra_forbidden":
            name = field if len(field) <= _MAX_SHOWN_NAME else f"{field[:_MAX_SHOWN_NAME]}…"
            problems.append(f"unknown field {name!r}")  # repr escapes NUL and lone surrogates
            continue
        if kind == "missing":
            message = "required"
        elif kind == "string_pattern_mismatch" and field == "user_id":
            message = USER_ID_RULE
        elif kind == "string_unicode":
            message = "is not valid Unicode text (a lone surrogate)"
        elif kind == "value_error":
            message = str(item.get("ctx", {}).get("error", item["msg"]))
        else:
            message = item["msg"]
        problems.append(f"{field}: {message}" if field else message)
    return shown(" ".join("; ".join(problems).split()), limit=2000)
