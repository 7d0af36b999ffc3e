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

from notify import preferences
from notify.categories import CATEGORIES, Category, non_essential
from notify.consent import Origin
from notify.models import ConsentSource, Recipient
from notify.privacy_log import mask_email
from notify.tokens import read_unsubscribe_token
from notify.web.forms import lenient_form
from notify.web.pages import invalid_link, page
from notify.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Target:
    recipient_id: int
    masked_email: str
    category: Category


def _resolve(state: WebState, token: str) -> Target | None:
    parsed = read_unsubscribe_token(state.settings.secret_key_list, token)
    if parsed is None:
        return None
    public_id, key = parsed
    category = CATEGORIES.get(key)
    if category is None or category.essential:
        return None
    with state.sessions() as session:
        recipient = session.scalars(
            select(Recipient).where(Recipient.public_id == public_id)
        ).one_or_none()
        if recipient is None or recipient.erased_at is not None:
            return None
        return Target(recipient.id, mask_email(recipient.email or ""), category)


def _set(state: WebState, target: Target, keys: list[str], subscribed: bool, source: str) -> None:
    defaults = state.settings.default_subscriptions
    with state.sessions.begin() as session:
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


@router.api_route("/u/{token}", methods=["GET", "HEAD"])
def confirm_page(token: str, request: Request) -> Response:
    target = _resolve(web_state(request), token)
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
    state = web_state(request)
    target = await run_in_threadpool(_resolve, state, token)
    if target is None:
        return invalid_link(request)
    form = await lenient_form(request)
    everything = "all" in form.get("scope", [])
    keys = [c.key for c in non_essential()] if everything else [target.category.key]
    source = ConsentSource.PAGE if everything else ConsentSource.ONE_CLICK
    await run_in_threadpool(_set, state, target, keys, False, source)
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
    state = web_state(request)
    target = await run_in_threadpool(_resolve, state, token)
    if target is None:
        return invalid_link(request)
    form = await lenient_form(request)
    allowed = {category.key for category in non_essential()}
    keys = [key for key in dict.fromkeys(form.get("category", [])) if key in allowed]
    keys = keys or [target.category.key]
    await run_in_threadpool(_set, state, target, keys, True, ConsentSource.UNDO)
    context = {
        "labels": [CATEGORIES[key].label for key in keys],
        "masked_email": target.masked_email,
    }
    return page(request, "resubscribed.html", context)
