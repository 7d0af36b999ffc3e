"""The console's page of one person, found by ``user_id``: what each category would meet if a
message were claimed now, their latest notifications with the decision each claim recorded, and
their consent log. The address is shown masked; no content of any message is shown."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from notify.categories import CATEGORIES
from notify.crypto import UndecryptableError
from notify.masking import mask_email
from notify.models.base import utcnow
from notify.people import consent, decisions, recipients
from notify.web.console.common import console_page, gate
from notify.web.console.sessions import SignedIn
from notify.web.state import web_state

router = APIRouter(prefix="/console", include_in_schema=False)
SHOWN_NOTIFICATIONS = 20
SHOWN_EVENTS = 20
MAX_USER_ID = 200  # as the API's user ids
UNREADABLE_ADDRESS = "(cannot be shown: no data key of this server decrypts it)"
RULES = {  # each step of notify.people.eligibility.Rule, as the page says it
    "erased": "the person was erased",
    "no_address": "no address on file",
    "hard_bounce": "the address bounced hard: no mail at all",
    "essential": "essential mail always goes out",
    "suppression": "the address is on the suppression list: no optional mail",
    "stored_choice": "the person's own choice",
    "category_default": "the category's default (they never chose)",
    "paused": "the person paused this category",
}


def _problem(
    request: Request, signed: SignedIn, user_id: str, problem: str, status: int
) -> Response:
    context = {"user_id": user_id, "problem": problem}
    return console_page(request, "people.html", context, signed=signed, status_code=status)


def _masked_address(session: Session, recipient_id: int) -> str:
    """The person's address, masked; or a note that no data key of this server decrypts it
    (the rest of the page needs no decryption, so it still shows)."""
    try:
        return mask_email(recipients.address_of(session, recipient_id) or "")
    except UndecryptableError:
        return UNREADABLE_ADDRESS


@router.get("/people")
def person_page(request: Request, user_id: str = "") -> Response:
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        wanted = user_id.strip()
        if not wanted:
            return console_page(request, "people.html", {"user_id": ""}, signed=signed)
        if len(wanted) > MAX_USER_ID:
            problem = f"A user id has at most {MAX_USER_ID} characters."
            return _problem(request, signed, wanted[:MAX_USER_ID], problem, 400)
        recipient = recipients.get_by_user_id(session, wanted, defer_encrypted=True)
        if recipient is None or recipient.erased_at is not None:
            return _problem(request, signed, wanted, "No person has this user id.", 404)
        now, zone = utcnow(), state.settings.default_timezone
        defaults = state.settings.default_subscriptions
        context: dict[str, Any] = {
            "user_id": wanted,
            "rules": RULES,
            "person": {
                "address": _masked_address(session, recipient.id),
                "locale": recipient.locale or "",
                "time_zone": recipient.timezone or "",
            },
            "now": [
                (
                    category,
                    decisions.explain_now(
                        session, recipient.id, key, defaults, now=now, default_zone=zone
                    ),
                )
                for key, category in CATEGORIES.items()
            ],
            "notifications": decisions.recent(session, recipient.id, SHOWN_NOTIFICATIONS),
            "events": consent.history(session, recipient.id, SHOWN_EVENTS),
        }
    return console_page(request, "people.html", context, signed=signed)
