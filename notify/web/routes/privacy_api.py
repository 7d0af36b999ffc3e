"""Export and erasure of one person (scope ``privacy``), and aggregate stats (no personal data)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from notify.models.base import utcnow
from notify.people import recipients
from notify.privacy import rights, stats
from notify.producers.api_keys import Caller
from notify.web.auth import require_scope
from notify.web.responses import API_ERRORS, also
from notify.web.schemas import UserId
from notify.web.state import db_session, web_state

router = APIRouter(tags=["privacy"], responses=API_ERRORS)
Privacy = Annotated[Caller, Depends(require_scope("privacy"))]
DbSession = Annotated[Session, Depends(db_session)]


@router.get("/v1/users/{user_id}/export", responses=also(404))
def export_user(
    user_id: UserId, request: Request, _: Privacy, session: DbSession
) -> dict[str, Any]:
    """Everything held about this person: profile, preferences, consent history, suppression
    status and the log of notifications. 404 for an unknown or erased user."""
    recipient = recipients.require_live(session, user_id)
    settings = web_state(request).settings
    return rights.export(
        session, recipient, hash_key=settings.hash_key, defaults=settings.default_subscriptions
    )


@router.delete("/v1/users/{user_id}", status_code=204)
def erase_user(user_id: UserId, request: Request, caller: Privacy, session: DbSession) -> Response:
    """Erase this person (see ``notify.privacy.rights.erase``). Repeating it is harmless: 204."""
    recipient = recipients.get_by_user_id(session, user_id, defer_encrypted=True)
    if recipient is not None:
        hash_key = web_state(request).settings.hash_key
        rights.erase(session, recipient, hash_key=hash_key, actor=caller.name)
        session.commit()
    return Response(status_code=204)


def _days_pattern() -> str:
    """A regular expression that matches exactly the calendar days ``2000-01-01`` to
    ``2100-01-01`` (``stats.EARLIEST`` to ``stats.LATEST``, which a test holds it to) written
    as ``YYYY-MM-DD``. Every year from 2000 to 2099 divisible by 4 is a leap year."""
    day_31 = "(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    day_30 = "(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    day_feb = "02-(?:0[1-9]|1[0-9]|2[0-8])"
    leap_day = "20(?:[02468][048]|[13579][26])-02-29"
    return f"^(?:20[0-9]{{2}}-(?:{day_31}|{day_30}|{day_feb})|{leap_day}|2100-01-01)$"


DAY_PATTERN = _days_pattern()
_DAY = re.compile(DAY_PATTERN)


def _day_query(name: str) -> Any:
    """The ``from`` or ``to`` query parameter. Its bounds are in the schema, as a pattern that
    :func:`_day` checks (not FastAPI: one 422 names the first bad end, as ``stats_range``)."""
    return Query(
        alias=name,
        description=(
            f"A UTC day, {stats.EARLIEST} to {stats.LATEST}. ``from`` must not be after ``to``"
            f", and they span at most {stats.MAX_DAYS - 1} days (422 otherwise)."
        ),
        json_schema_extra={"format": "date", "pattern": DAY_PATTERN},
    )


def _day(field: str, text: str | None) -> date | None:
    """The day ``text`` names; raises ``RangeError`` (a 422 naming ``field``) unless it matches
    :data:`DAY_PATTERN`, which lets only real days in the range through."""
    if text is None:
        return None
    if _DAY.fullmatch(text) is None:
        raise stats.RangeError(
            field, f"must be a day from {stats.EARLIEST} to {stats.LATEST}, e.g. 2026-05-01"
        )
    return date.fromisoformat(text)


@router.get("/v1/stats")
def get_stats(
    _: Annotated[Caller, Depends(require_scope("campaigns:read"))],
    session: DbSession,
    start: Annotated[str | None, _day_query("from")] = None,
    end: Annotated[str | None, _day_query("to")] = None,
) -> dict[str, Any]:
    """Per UTC day, category and template: sent, suppressed by reason, failed, pending; and
    unsubscribes by route; and, as of now, how many people agree to each category by the
    version of its wording they last agreed to. No addresses, no user ids. ``to`` defaults to
    today and ``from`` to the 30 days ending at ``to``. A day outside 2000-01-01..2100-01-01
    (or not a day), ``from`` after ``to``, or a range of more than 400 days is a 422 naming
    the query field."""
    first, last = stats.stats_range(_day("from", start), _day("to", end), utcnow().date())
    return stats.daily(session, first, last)
