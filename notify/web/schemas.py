"""Request and response bodies of the JSON API. Unknown fields are refused (422)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from fastapi import Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from notify.message.validation import locale_tag
from notify.people import user_row
from notify.people.user_row import UserFields


def _any_case(word: str) -> str:
    return "".join(
        f"[{letter.upper()}{letter.lower()}]" if letter.isalpha() else letter for letter in word
    )


# The fields below validate as the shared ones of ``notify.people.user_row`` do, and spell out
# in the OpenAPI document what they refuse, so that the document and the API agree.

# A user id (``user_row.UserId``): ``\s`` is Unicode White_Space to pydantic's validator but
# not to an OpenAPI client (ECMA-262 adds U+FEFF and lacks U+0085), so the class is listed.
_WHITESPACE = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
UserId = Annotated[str, Field(min_length=1, max_length=200, pattern=rf"^[^{_WHITESPACE}/\x00]+$")]

# An address, syntax-checked without DNS and normalised: ``format: email``, at most 254
# characters, and not in a special-use domain such as ``.test`` (refused by the checker).
_SPECIAL_USE = "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)
_EMAIL_SCHEMA: dict[str, Any] = {
    "format": "email",
    "pattern": rf"^(?!.*[.@](?:{_SPECIAL_USE})$)",  # published only: no look-ahead in pydantic
}
_EMAIL_MAX = 254  # RFC 5321's limit, which the checker applies
Email = Annotated[
    user_row.Email, Field(min_length=1, max_length=_EMAIL_MAX, json_schema_extra=_EMAIL_SCHEMA)
]
# The same in a path (``DELETE /v1/suppressions/{email}``), checked by the route itself.
EmailInPath = Annotated[
    str, Path(min_length=1, max_length=_EMAIL_MAX, json_schema_extra=_EMAIL_SCHEMA)
]

# A language tag such as ``en`` or ``pt-BR``. The pattern is validated here first: the shared
# check (``locale_tag``) also lets a trailing line break through (Python's ``$``).
Locale = Annotated[
    str,
    Field(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"),
    AfterValidator(locale_tag),
]

# An IANA time zone name this machine knows, such as ``Europe/London``: published as the list.
Timezone = Annotated[
    user_row.Timezone, Field(json_schema_extra={"enum": sorted(available_timezones())})
]

# Times a campaign starts at, between the years 2000 and 2100: ``YYYY-MM-DDTHH:MM[:SS]`` (seconds
# optional, as ISO 8601 allows and as the API always accepted) with up to six digits of fraction,
# and an offset (``Z`` or ``+HH:MM``) only on a time that is not a wall-clock time. Each pattern
# is exact (no 31 April), is what the OpenAPI document says, and is checked before pydantic
# reads the text, which would also take a number of seconds since 1970 or a space for the ``T``.
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_DAY = "20(?:[02468][048]|[13579][26])-02-29"  # 2100 is not a leap year
_DAY = f"(?:(?:20[0-9]{{2}}|2100)-{_MONTH_DAY}|{_LEAP_DAY})"
_CLOCK = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_SECONDS = r":[0-5][0-9](?:\.[0-9]{1,6})?"
AWARE_TIME_PATTERN = f"^{_DAY}T{_CLOCK}(?:{_SECONDS})?(?:Z|[+-]{_CLOCK})$"
LOCAL_TIME_PATTERN = f"^{_DAY}T{_CLOCK}(?:{_SECONDS})?$"


def _text_matching(pattern: str, shape: str) -> BeforeValidator:
    compiled = re.compile(pattern)

    def check(value: Any) -> Any:
        if not isinstance(value, str) or compiled.fullmatch(value) is None:
            raise ValueError(f"must be {shape}, between the years 2000 and 2100")
        return value

    return BeforeValidator(check)


AwareTime = Annotated[
    datetime,
    _text_matching(AWARE_TIME_PATTERN, "a time with an offset, e.g. 2026-12-01T10:00:00Z"),
    # No "format": "date-time": RFC 3339 requires seconds, and the API accepts a time without.
    WithJsonSchema({"type": "string", "pattern": AWARE_TIME_PATTERN}),
]
LocalTime = Annotated[
    datetime,
    _text_matching(LOCAL_TIME_PATTERN, "a wall-clock time without offset, e.g. 2026-12-01T10:00"),
    WithJsonSchema({"type": "string", "pattern": LOCAL_TIME_PATTERN}),
]

CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1)]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NotificationIn(Strict):
    template: str = Field(max_length=100)
    user_id: UserId
    email: Email | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: IdempotencyKey | None = None


class NotificationAccepted(BaseModel):
    id: str
    status: str


class NotificationOut(BaseModel):
    id: str
    status: str
    reason: str | None
    attempts: int
    template: str
    category: str
    created_at: datetime
    sent_at: datetime | None
    message_id: str | None


class ConsentEventRef(BaseModel):
    """The consent-log event that set a choice: its id, when, and by which route."""

    id: int
    at: datetime | None
    route: str


class ChoiceSeen(BaseModel):
    """The person's stored choice for the category, as the decision saw it."""

    subscribed: bool
    since: datetime | None
    source: str
    consent_event: ConsentEventRef | None


class SuppressionSeen(BaseModel):
    """The suppression-list entry of the person's address (``source`` and the event id only
    where this person's own consent log recorded it)."""

    reason: str
    since: datetime | None
    source: str | None
    consent_event_id: int | None


class CategorySeen(BaseModel):
    key: str
    essential: bool
    default: Literal["subscribed", "unsubscribed"]
    lane: str


class PersonSeen(BaseModel):
    erased: bool
    has_address: bool


class PauseSeen(BaseModel):
    until: datetime


class QuietHoursSeen(BaseModel):
    window: str  # HH:MM-HH:MM
    time_zone: str  # the person's, or NOTIFY_DEFAULT_TIMEZONE when they have none


class CampaignSeen(BaseModel):
    id: int
    status: str
    rate_per_second: float | None


class Decision(BaseModel):
    """Why a message goes out or not: the verdict, the step of the rule that decided
    (``erased``, ``no_address``, ``hard_bounce``, ``essential``, ``suppression``,
    ``stored_choice``, ``category_default`` or ``paused``), when quiet hours hold it back to,
    and the facts it saw. Never an address."""

    decided_by: Literal["claim", "dry_run"]
    decided_at: datetime
    sends: bool  # it goes out at this claim (or would, now)
    blocked: str | None  # why it never will: the reason it was suppressed
    delayed_until: datetime | None = None  # the person's quiet hours hold it back until then
    rule: str
    category: CategorySeen
    person: PersonSeen
    choice: ChoiceSeen | None
    suppression: SuppressionSeen | None
    pause: PauseSeen | None = None
    quiet_hours: QuietHoursSeen | None = None
    campaign: CampaignSeen | None


class NotificationExplained(BaseModel):
    id: str
    status: str
    reason: str | None
    decision: Decision | None  # None until a worker has claimed it


class ExplainIn(Strict):
    template: str = Field(max_length=100)
    user_id: UserId


class ExplainOut(BaseModel):
    user_id: str
    template: str
    decision: Decision


# The shared user model under the name the OpenAPI document has always published.
class UserIn(UserFields):
    email: Email
    locale: Locale | None = None
    timezone: Timezone | None = None


class UserOut(BaseModel):
    user_id: str
    email: str | None
    locale: str | None
    timezone: str | None
    first_name: str | None = None
    name: str | None = None
    attributes: Annotated[dict[str, Any], BeforeValidator(lambda value: value or {})] = Field(
        default_factory=dict
    )
    created_at: datetime
    updated_at: datetime


class TemplateOut(BaseModel):
    name: str
    category: str
    essential: bool
    description: str
    variables: list[str]
    optional_variables: list[str] = Field(default_factory=list)
    recipient_fields: list[str] = Field(
        default_factory=list,
        description="the person's own fields the template reads (recipient.first_name, ...)",
    )
    translatable_variables: list[str] = Field(
        default_factory=list,
        description=(
            "the variables data.translations may give in other languages, as "
            '{"translations": {"de": {"subject": "…", "body": "…"}}}, with data.language naming '
            "the language of the top-level values (the default locale when left out); each "
            "person gets the first of their locale chain that is there. Empty: notify translates "
            "the template itself into every shipped language (en, de, fr)."
        ),
    )
