"""One definition of a user row, shared by ``PUT /v1/users/{user_id}`` and the bulk import.

A value that passes these types can be stored as it is, on SQLite and PostgreSQL alike: it is
valid Unicode (pydantic refuses lone surrogates; :class:`UserRow` also refuses a field name
holding one), it holds no NUL character, it fits its column (``user_id`` 200, ``locale`` 35,
``timezone`` 64 characters), and a number read as text is finite (never ``nan`` or ``inf``).
Addresses come back in their normal form. The single-value checks themselves live in
``notify.message.validation``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from notify.message.personal import NAMED_FIELDS
from notify.message.template_data import shown, unstorable_value
from notify.message.validation import (
    CONTROL_CHARACTERS,
    known_timezone,
    locale_tag,
    normalised_email,
    one_line_text,
)

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

# What a person is called, as templates show it (``recipient.first_name``, ``recipient.name``):
# one line, at most 200 characters; an empty one is "not given".
PersonName = Annotated[
    str,
    Field(max_length=200, json_schema_extra={"pattern": f"^[^{CONTROL_CHARACTERS}]*$"}),
    AfterValidator(one_line_text),
]

# ``recipient.attributes``: a flat object of text, numbers and true/false, read by templates
# as ``recipient.attributes.<key>``, so every key is a name a template can write.
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTES_BYTES = 4096  # compact JSON, UTF-8
MAX_ATTRIBUTE_TEXT = 1000
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ATTRIBUTE_KEY_RULE = (
    "must start with a letter or _ and hold only letters, digits and _ (64 at most)"
)
# Import columns that are not attributes.
RESERVED_COLUMNS = frozenset({"user_id", "email", "locale", "timezone", *NAMED_FIELDS})

_MAX_SHOWN_NAME = 40


def checked_attributes(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` if it is a valid attributes object; else ``ValueError`` naming the first
    problem. Empty text values are dropped (an empty cell gives no attribute)."""
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes are allowed, not {len(value)}")
    unstorable = unstorable_value(value, ("attributes",))
    if unstorable is not None:
        raise ValueError(f"{'.'.join(unstorable.loc[1:]) or 'attributes'} {unstorable.msg}")
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if not ATTRIBUTE_KEY.match(key):
            raise ValueError(f"key {shown(key)!r} {ATTRIBUTE_KEY_RULE}")
        if isinstance(item, dict | list):
            raise ValueError(f"{key} must be text, a number, true or false, not a list or object")
        if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_TEXT:
            raise ValueError(f"{key} is longer than {MAX_ATTRIBUTE_TEXT} characters")
        if item is None or item == "":
            continue
        kept[key] = item
    size = len(json.dumps(kept, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"are {size} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES} are allowed")
    return kept


Attributes = Annotated[
    dict[str, Any],
    AfterValidator(checked_attributes),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_ATTRIBUTES,
            "propertyNames": {"pattern": ATTRIBUTE_KEY.pattern},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": MAX_ATTRIBUTE_TEXT},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
            "description": f"at most {MAX_ATTRIBUTES_BYTES} bytes as compact JSON (UTF-8)",
        }
    ),
]


class UserFields(BaseModel):
    """What may be set on a user: an address (required), a locale, a time zone, a first name,
    a name and attributes (optional; ``None`` leaves the stored value, and ``attributes``
    replaces the stored object). Any other field is refused."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    locale: Locale | None = None
    timezone: Timezone | None = None
    first_name: PersonName | None = None
    name: PersonName | None = None
    attributes: Attributes | None = None


class UserRow(UserFields):
    """One row of a user import: ``user_id,email,locale,timezone`` and optionally
    ``first_name``, ``name`` and any other field, which becomes an attribute (JSON lines may
    also carry an ``attributes`` object).

    An empty (or absent) locale, time zone, first name or name means "keep the stored one", so
    it becomes ``None``; so does an empty attribute. A number is read as text (JSON lines may
    carry ``"user_id": 42``), except in attributes, which keep numbers and true/false.
    """

    model_config = ConfigDict(coerce_numbers_to_str=True)

    user_id: UserId

    @model_validator(mode="before")
    @classmethod
    def _other_fields_are_attributes(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        extra = {key: item for key, item in value.items() if key not in RESERVED_COLUMNS}
        extra.pop("attributes", None)
        if not extra:
            return value
        given = value.get("attributes")
        merged = {**(given if isinstance(given, dict) else {}), **extra}
        known = {key: item for key, item in value.items() if key in RESERVED_COLUMNS}
        return {**known, "attributes": merged}

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

    @field_validator("user_id", "email", "locale", "timezone", "first_name", "name", mode="before")
    @classmethod
    def _finite_numbers_only(cls, value: Any) -> Any:
        # JSON lines read NaN and Infinity as floats, which would become the text "nan"/"inf".
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be text or a finite number, not NaN or Infinity")
        return value

    @field_validator("locale", "timezone", "first_name", "name", mode="before")
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
