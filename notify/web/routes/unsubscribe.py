"""``/u/<token>``: the unsubscribe link in every non-essential email.

GET and HEAD never change anything (link scanners fetch them, and run JavaScript): they show
what one press would change or, for a person already unsubscribed from the link's category,
say so and offer to subscribe again. POST is the RFC 8058 one-click endpoint and the page's
form target: no cookie, login or CSRF token, no redirect, any body; the opt-out is committed
before the 200, and repeating it is harmless.

The consent log (and so the stats' unsubscribes by route) tells the two apart by the body: a
press of the page's own button sends ``via=page`` and is recorded as ``page``; any other body,
``List-Unsubscribe=One-Click`` as a mail client sends it, an empty or an unreadable one, is
recorded as ``one_click``. A press of the page's button goes through the scanner guard
(:mod:`notify.people.scanner_guard`): during a hold after a burst, it changes nothing and the
person is asked to tick a box and press again; one-click POSTs are never held.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.categories import CATEGORIES, Category, non_essential
from notify.masking import mask_email
from notify.message.tokens import preferences_token, read_unsubscribe_token
from notify.models import ConsentSource, Recipient
from notify.models.base import utcnow
from notify.people import preferences, scanner_guard
from notify.people.consent import Origin
from notify.web.forms import lenient_form
from notify.web.pages import invalid_link, page
from notify.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
PAGE_FIELD = "via"  # the page's forms send via=page; a mail client's one-click POST does not
CONFIRM_FIELD, CONFIRMED = "confirm", "yes"  # the ticked box of the page asking to confirm


@dataclass(frozen=True)
class Target:
    recipient_id: int
    public_id: str
    masked_email: str
    category: Category
    locale: str | None  # the person's, for the page's language


def _link(state: WebState, token: str) -> tuple[str, Category, int | None] | None:
    """Whose link, which optional category and which campaign's message held it, from a
    valid token; None for any bad one."""
    parsed = read_unsubscribe_token(state.settings.secret_key_list, token)
    if parsed is None:
        return None
    category = CATEGORIES.get(parsed.category)
    if category is None or category.essential:
        return None
    return parsed.public_id, category, parsed.campaign_id


def _resolve(session: Session, state: WebState, token: str) -> Target | None:
    link = _link(state, token)
    if link is None:
        return None
    public_id, category, _ = link
    recipient = session.scalars(
        select(Recipient).where(Recipient.public_id == public_id)
    ).one_or_none()
    if recipient is None or recipient.erased_at is not None:
        return None
    masked = mask_email(recipient.email or "")
    return Target(recipient.id, public_id, masked, category, recipient.locale)


def source_of(form: dict[str, list[str]], subscribed: bool) -> ConsentSource:
    """How a POST is recorded in the consent log. An unsubscribe is ``page`` when the page's
    button sent it (``via=page``, or the page-only ``scope=all``) and ``one_click`` for any other
    body; a subscribe is ``page`` from the already-unsubscribed page's button (``via=page``) and
    ``undo`` from the undo button shown right after an unsubscribe."""
    from_page = "page" in form.get(PAGE_FIELD, [])
    if subscribed:
        return ConsentSource.PAGE if from_page else ConsentSource.UNDO
    if from_page or "all" in form.get("scope", []):
        return ConsentSource.PAGE
    return ConsentSource.ONE_CLICK


@dataclass(frozen=True)
class Held:
    """A press of the page's button from a source held after a scanner's burst
    (:mod:`notify.people.scanner_guard`): nothing changed, the person is asked to confirm."""

    target: Target
    all_optional: bool  # the press was "stop all optional emails"


def _keys_for(target: Target, form: dict[str, list[str]], subscribed: bool) -> list[str]:
    """What a POST changes: the link's category, all optional ones (``scope=all``), or on undo
    the categories the unsubscribe named."""
    optional = [category.key for category in non_essential()]
    if not subscribed:
        return optional if "all" in form.get("scope", []) else [target.category.key]
    named = [key for key in dict.fromkeys(form.get("category", [])) if key in optional]
    return named or [target.category.key]


def _apply(
    state: WebState,
    token: str,
    form: dict[str, list[str]],
    subscribed: bool,
    client_ip: str | None = None,
) -> tuple[Target, list[str]] | Held | None:
    """Resolve the token and record the choice in one session and one transaction; committed
    before the answer is sent. None for any kind of bad token (nothing changes). A press of
    the page's unsubscribe button goes through the scanner guard (:func:`_page_press`)."""
    defaults = state.settings.default_subscriptions
    source = source_of(form, subscribed)
    link = _link(state, token)
    if link is None:
        return None
    origin = Origin(source, campaign_id=link[2])  # the campaign whose message held the link
    if source is ConsentSource.PAGE and not subscribed:
        return _page_press(state, token, form, origin, client_ip)
    if not subscribed and "all" not in form.get("scope", []):
        return _unsubscribe_link_category(state, link, origin)
    with state.sessions.begin() as session:
        target = _resolve(session, state, token)
        if target is None:
            return None
        keys = _keys_for(target, form, subscribed)
        for key in keys:
            preferences.choose(
                session,
                target.recipient_id,
                key,
                subscribed,
                origin,
                defaults=defaults,
                hash_key=state.settings.hash_key,
            )
        return target, keys


def _page_press(
    state: WebState, token: str, form: dict[str, list[str]], origin: Origin, client_ip: str | None
) -> tuple[Target, list[str]] | Held | None:
    """The page's unsubscribe button: held for a confirmation while its network or domain is
    held after a burst, else honoured and counted toward bursts; a confirmed press is honoured
    and not counted. One transaction."""
    now = utcnow()
    confirmed = CONFIRMED in form.get(CONFIRM_FIELD, [])
    limits = scanner_guard.Limits.of(state.settings)
    with state.sessions.begin() as session:
        target = _resolve(session, state, token)
        if target is None:
            return None
        address = session.scalar(select(Recipient.email).where(Recipient.id == target.recipient_id))
        where = scanner_guard.source_of(state.settings.hash_key, client_ip, address)
        keys = _keys_for(target, form, False)
        hold = None if confirmed else scanner_guard.held(session, where, now)
        changed: list[str] = []
        if hold is not None:
            for key in keys:
                scanner_guard.log_held(session, target.recipient_id, key, hold)
        else:
            for key in keys:
                if preferences.choose(
                    session,
                    target.recipient_id,
                    key,
                    False,
                    origin,
                    defaults=state.settings.default_subscriptions,
                    hash_key=state.settings.hash_key,
                ):
                    changed.append(key)
        if not confirmed:  # a confirmed press is a person's: it does not count toward a burst
            early = scanner_guard.is_early(
                session, target.recipient_id, target.category.key, now, limits
            )
            for key in changed or [target.category.key]:
                scanner_guard.record_press(
                    session,
                    target.recipient_id,
                    key,
                    where,
                    early=early,
                    honoured=key in changed,
                    now=now,
                    limits=limits,
                )
    if hold is not None:
        return Held(target, all_optional="all" in form.get("scope", []))
    return target, keys


def _unsubscribe_link_category(
    state: WebState, link: tuple[str, Category, int | None], origin: Origin
) -> tuple[Target, list[str]] | None:
    """The common press, a mail client's one-click POST: the link's own category off, found
    and recorded in one statement on PostgreSQL, committed before the answer."""
    public_id, category, _ = link
    with state.sessions.begin() as session:
        holder = preferences.unsubscribe_link_holder(
            session, public_id, category.key, origin, state.settings.default_subscriptions
        )
    if holder is None:
        return None
    masked = mask_email(holder.email or "")
    target = Target(holder.recipient_id, public_id, masked, category, holder.locale)
    return target, [category.key]


def _look(state: WebState, token: str) -> tuple[Target, bool] | None:
    """The link's target and whether the person gets its category now; changes nothing."""
    with state.sessions() as session:
        target = _resolve(session, state, token)
        if target is None:
            return None
        subscribed = preferences.subscribed_to(
            session,
            target.recipient_id,
            target.category.key,
            state.settings.default_subscriptions,
        )
    return target, subscribed


@router.api_route("/u/{token}", methods=["GET", "HEAD"])
def confirm_page(token: str, request: Request) -> Response:
    """The confirmation page, or the already-unsubscribed page with a button to subscribe
    again; never changes anything."""
    state = web_state(request)
    looked = _look(state, token)
    if looked is None:
        return invalid_link(request)
    target, subscribed = looked
    context = {
        "category_label": target.category.label_in_text,
        "category_key": target.category.key,
        "masked_email": target.masked_email,
        "action": f"/u/{token}",
    }
    if subscribed:
        return page(request, "unsubscribe.html", context, person_locale=target.locale)
    keys = state.settings.secret_key_list
    context["resubscribe_action"] = f"/u/{token}/undo"
    context["preferences_action"] = f"/preferences/{preferences_token(keys, target.public_id)}"
    return page(request, "already_unsubscribed.html", context, person_locale=target.locale)


@router.post("/u/{token}")
async def unsubscribe(token: str, request: Request) -> Response:
    form = await lenient_form(request)
    client_ip = request.client.host if request.client else None
    done = await run_in_threadpool(_apply, web_state(request), token, form, False, client_ip)
    if done is None:
        return invalid_link(request)
    if isinstance(done, Held):
        context = {
            "category_label": done.target.category.label_in_text,
            "masked_email": done.target.masked_email,
            "action": f"/u/{token}",
            "all_optional": done.all_optional,
        }
        return page(request, "unsubscribe_confirm.html", context, person_locale=done.target.locale)
    target, keys = done
    context = {
        "labels": [CATEGORIES[key].label_in_text for key in keys],
        "categories": keys,
        "masked_email": target.masked_email,
        "undo_action": f"/u/{token}/undo",
    }
    return page(request, "unsubscribed.html", context, person_locale=target.locale)


@router.post("/u/{token}/undo")
async def undo(token: str, request: Request) -> Response:
    """Subscribe again to what the unsubscribe just changed (``undo``), or, from the
    already-unsubscribed page (``via=page``), to the link's category (``page``); a consent event
    records it."""
    form = await lenient_form(request)
    done = await run_in_threadpool(_apply, web_state(request), token, form, True)
    if done is None or isinstance(done, Held):  # a subscribe is never held
        return invalid_link(request)
    target, keys = done
    context = {
        "labels": [CATEGORIES[key].label_in_text for key in keys],
        "masked_email": target.masked_email,
    }
    return page(request, "resubscribed.html", context, person_locale=target.locale)
