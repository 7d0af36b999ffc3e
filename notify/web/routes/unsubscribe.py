"""``/u/<token>``: the unsubscribe link in every non-essential email.

GET and HEAD never change anything (link scanners fetch them, and run JavaScript). POST is the
RFC 8058 one-click endpoint and the page's form target: no cookie, login or CSRF token, no
redirect, any body; the opt-out is committed before the 200, and repeating it is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.categories import CATEGORIES, Category, non_essential
from notify.masking import mask_email
from notify.message.tokens import read_unsubscribe_token
from notify.models import ConsentSource, Recipient
from notify.people import preferences
from notify.people.consent import Origin
from notify.web.forms import lenient_form
from notify.web.pages import invalid_link, page
from notify.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Target:
    recipient_id: int
    masked_email: str
    category: Category


def _resolve(session: Session, state: WebState, token: str) -> Target | None:
    parsed = read_unsubscribe_token(state.settings.secret_key_list, token)
    if parsed is None:
        return None
    public_id, key = parsed
    category = CATEGORIES.get(key)
    if category is None or category.essential:
        return None
    recipient = session.scalars(
        select(Recipient).where(Recipient.public_id == public_id)
    ).one_or_none()
    if recipient is None or recipient.erased_at is not None:
        return None
    return Target(recipient.id, mask_email(recipient.email or ""), category)


def _keys_for(target: Target, form: dict[str, list[str]], subscribed: bool) -> list[str]:
    """What a POST changes: the link's category, all optional ones (``scope=all``), or on undo
    the categories the unsubscribe named."""
    optional = [category.key for category in non_essential()]
    if not subscribed:
        return optional if "all" in form.get("scope", []) else [target.category.key]
    named = [key for key in dict.fromkeys(form.get("category", [])) if key in optional]
    return named or [target.category.key]


def _apply(
    state: WebState, token: str, form: dict[str, list[str]], subscribed: bool
) -> tuple[Target, list[str]] | None:
    """Resolve the token and record the choice in one session and one transaction; committed
    before the answer is sent. None for any kind of bad token (nothing changes)."""
    defaults = state.settings.default_subscriptions
    with state.sessions.begin() as session:
        target = _resolve(session, state, token)
        if target is None:
            return None
        keys = _keys_for(target, form, subscribed)
        if subscribed:
            source = ConsentSource.UNDO
        else:
            everything = "all" in form.get("scope", [])
            source = ConsentSource.PAGE if everything else ConsentSource.ONE_CLICK
        for key in keys:
            preferences.choose(
                session,
                target.recipient_id,
                key,
                subscribed,
                Origin(source),
                defaults=defaults,
                hash_key=state.settings.hash_key,
            )
        return target, keys


@router.api_route("/u/{token}", methods=["GET", "HEAD"])
def confirm_page(token: str, request: Request) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        target = _resolve(session, state, token)
    if target is None:
        return invalid_link(request)
    context = {
        "category_label": target.category.label,
        "masked_email": target.masked_email,
        "action": f"/u/{token}",
    }
    return page(request, "unsubscribe.html", context)


@router.post("/u/{token}")
async def unsubscribe(token: str, request: Request) -> Response:
    form = await lenient_form(request)
    done = await run_in_threadpool(_apply, web_state(request), token, form, False)
    if done is None:
        return invalid_link(request)
    target, keys = done
    context = {
        "labels": [CATEGORIES[key].label for key in keys],
        "categories": keys,
        "masked_email": target.masked_email,
        "undo_action": f"/u/{token}/undo",
    }
    return page(request, "unsubscribed.html", context)


@router.post("/u/{token}/undo")
async def undo(token: str, request: Request) -> Response:
    """Re-subscribe what the unsubscribe just changed; a consent event records it."""
    form = await lenient_form(request)
    done = await run_in_threadpool(_apply, web_state(request), token, form, True)
    if done is None:
        return invalid_link(request)
    target, keys = done
    context = {
        "labels": [CATEGORIES[key].label for key in keys],
        "masked_email": target.masked_email,
    }
    return page(request, "resubscribed.html", context)
