"""Export and erasure of one person (scope ``privacy``), and aggregate stats (no personal data)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from notify.models.base import utcnow
from notify.people import recipients
from notify.privacy import rights, stats
from notify.producers.api_keys import Caller
from notify.web.auth import require_scope
from notify.web.schemas import UserId
from notify.web.state import db_session, web_state

router = APIRouter(tags=["privacy"])
Privacy = Annotated[Caller, Depends(require_scope("privacy"))]
DbSession = Annotated[Session, Depends(db_session)]


@router.get("/v1/users/{user_id}/export")
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
    recipient = recipients.get_by_user_id(session, user_id)
    if recipient is not None:
        rights.erase(
            session, recipient, hash_key=web_state(request).settings.hash_key, actor=caller.name
        )
        session.commit()
    return Response(status_code=204)


@router.get("/v1/stats")
def get_stats(
    _: Annotated[Caller, Depends(require_scope("campaigns:read"))],
    session: DbSession,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Per UTC day, category and template: sent, suppressed by reason, failed, pending; and
    unsubscribes by route. No addresses, no user ids. Defaults to the last 30 days. A range that
    cannot be counted (an end outside 2000-01-01..2100-01-01, ``from`` after ``to``, more than
    400 days) is a 422 naming the query field."""
    first, last = stats.stats_range(start, end, utcnow().date())
    return stats.daily(session, first, last)
