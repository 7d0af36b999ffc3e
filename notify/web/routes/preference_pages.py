"""``/preferences``: the preference page behind a signed, expiring link, and the form that
emails a fresh link.

The request form answers the same whether or not the address is known; a link is sent only to
a known address, at most once per ``NOTIFY_PREFERENCES_LINK_INTERVAL_SECONDS``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select

from notify.categories import non_essential
from notify.delivery import outbox
from notify.delivery.outbox import NotificationRequest
from notify.i18n import formatting
from notify.i18n.catalogues import N_
from notify.i18n.locales import SHIPPED_LOCALES, own_name
from notify.masking import mask_email
from notify.message.tokens import TokenExpiredError, read_preferences_token
from notify.message.validation import normalised_email
from notify.models import ConsentSource, Notification, Recipient
from notify.models.base import utcnow
from notify.people import pauses, preferences, quiet_hours
from notify.people.consent import Origin
from notify.people.pauses import PAUSE_DAYS, PauseLengthError
from notify.people.quiet_hours import QuietHours, QuietHoursError
from notify.people.suppressions import address_hash
from notify.web.forms import lenient_form
from notify.web.pages import invalid_link, page, page_locale
from notify.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
LINK_TEMPLATE = "preferences_link"
RESUME = "resume"  # the pause menu's choice to end a running pause now
DEFAULT_QUIET_START, DEFAULT_QUIET_END = "22:00", "07:00"  # offered while none are set
QUIET_HOURS_PROBLEM = N_(
    "Nothing was saved: quiet hours need a start and an end time, and a pause lasts 30 or 90 days."
)


@dataclass(frozen=True)
class Person:
    recipient_id: int
    masked_email: str
    locale: str | None  # as stored: the page is in this language, along its chain
    time_zone: str | None = None  # as stored: quiet hours and dates are in it (if None, in
    # NOTIFY_DEFAULT_TIMEZONE)


class Expired:
    pass


def _person(state: WebState, token: str) -> Person | Expired | None:
    max_age = state.settings.preferences_token_days * 86_400
    try:
        public_id = read_preferences_token(state.settings.secret_key_list, token, max_age)
    except TokenExpiredError:
        return Expired()
    if public_id is None:
        return None
    with state.sessions() as session:
        recipient = session.scalars(
            select(Recipient).where(Recipient.public_id == public_id)
        ).one_or_none()
        if recipient is None or recipient.erased_at is not None:
            return None
        return Person(
            recipient.id, mask_email(recipient.email or ""), recipient.locale, recipient.timezone
        )


def _show(
    request: Request,
    token: str,
    person: Person,
    saved: bool,
    problem: str | None = None,
) -> Response:
    state = web_state(request)
    locale = page_locale(request, person.locale)
    zone = person.time_zone or state.settings.default_timezone
    with state.sessions() as session:
        states = preferences.current(
            session, person.recipient_id, state.settings.default_subscriptions
        )
        paused = pauses.paused_until(session, person.recipient_id, utcnow())
        recipient = session.get_one(Recipient, person.recipient_id)
        quiet = (recipient.quiet_hours_start, recipient.quiet_hours_end)
    categories = [
        {
            "key": key,
            "label": item.category.label,
            "label_in_text": item.category.label_in_text,
            "essential": item.category.essential,
            "description": item.category.description,
            "why_always_on": item.category.why_always_on,
            "subscribed": item.subscribed,
            "paused_until": formatting.day(paused[key], locale, zone) if key in paused else None,
        }
        for key, item in states.items()
    ]
    context = {
        "masked_email": person.masked_email,
        "categories": categories,
        "action": f"/preferences/{token}",
        "saved": saved,
        "problem": problem,
        "languages": [{"tag": tag, "name": own_name(tag)} for tag in SHIPPED_LOCALES],
        "pause_days": PAUSE_DAYS,
        "quiet_on": quiet[0] is not None,
        "quiet_start": quiet[0] or DEFAULT_QUIET_START,
        "quiet_end": quiet[1] or DEFAULT_QUIET_END,
        "time_zone": zone,
        "own_zone": person.time_zone is not None,
    }
    status = 200 if problem is None else 400
    return page(request, "preferences.html", context, status, person_locale=person.locale)


def _request_page(request: Request, *, expired: bool = False, sent: bool = False) -> Response:
    days = web_state(request).settings.preferences_token_days
    context = {"expired": expired, "sent": sent, "days": days}
    return page(request, "preferences_request.html", context, status_code=410 if expired else 200)


@router.api_route("/preferences/{token}", methods=["GET", "HEAD"])
def preference_page(token: str, request: Request) -> Response:
    person = _person(web_state(request), token)
    if isinstance(person, Expired):
        return _request_page(request, expired=True)
    if person is None:
        return invalid_link(request)
    return _show(request, token, person, saved=False)


@router.post("/preferences/{token}")
async def save_preferences(token: str, request: Request) -> Response:
    """Checked boxes are subscribed, unchecked ones are not; essential ones cannot change. The
    chosen language becomes the person's locale when they had none or it reads another one."""
    state = web_state(request)
    person = await run_in_threadpool(_person, state, token)
    if isinstance(person, Expired):
        return _request_page(request, expired=True)
    if person is None:
        return invalid_link(request)
    form = await lenient_form(request)
    if "choices" not in form:  # not our form (empty, oversized, garbled): change nothing
        return await run_in_threadpool(_show, request, token, person, False)
    chosen = set(form.get("category", []))
    language = _first(form, "language")
    try:
        quiet = _quiet_hours_chosen(form)
        pausing = _pauses_chosen(form)
    except (QuietHoursError, PauseLengthError):
        return await run_in_threadpool(_show, request, token, person, False, QUIET_HOURS_PROBLEM)
    # A person with no stored locale saw the page in their browser's language: saving it
    # confirms that language for their emails too.
    stored_language = page_locale(request, person.locale) if person.locale else None

    def save() -> Person:
        defaults = state.settings.default_subscriptions
        origin = Origin(ConsentSource.PREFERENCE_CENTRE)
        with state.sessions.begin() as session:
            for category in non_essential():
                subscribed = category.key in chosen
                preferences.choose(
                    session,
                    person.recipient_id,
                    category.key,
                    subscribed,
                    origin,
                    defaults=defaults,
                    hash_key=state.settings.hash_key,
                )
            now = utcnow()
            for key, choice in pausing.items():
                if isinstance(choice, int):
                    pauses.pause(session, person.recipient_id, key, choice, origin, now=now)
                else:
                    pauses.resume(session, person.recipient_id, key, origin, now=now)
            pauses.set_quiet_hours(session, person.recipient_id, quiet, origin)
            if language in SHIPPED_LOCALES and language != stored_language:
                preferences.choose_language(session, person.recipient_id, language, origin)
                return replace(person, locale=language)
        return person

    saved = await run_in_threadpool(save)
    return await run_in_threadpool(_show, request, token, saved, True)


def _first(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0].strip()


def _quiet_hours_chosen(form: dict[str, list[str]]) -> QuietHours | None:
    """The window the form asks for (None: the box is unticked). Raises QuietHoursError."""
    if not _first(form, "quiet"):
        return None
    return quiet_hours.parse(_first(form, "quiet_start"), _first(form, "quiet_end"))


def _pauses_chosen(form: dict[str, list[str]]) -> dict[str, int | str]:
    """Per optional category, what the form asks: a pause of so many days, or RESUME; a
    category left at "no change" is absent. Raises PauseLengthError for anything else."""
    chosen: dict[str, int | str] = {}
    for category in non_essential():
        value = _first(form, f"pause_{category.key}")
        if not value:
            continue
        if value == RESUME:
            chosen[category.key] = RESUME
        elif value in {str(days) for days in PAUSE_DAYS}:
            chosen[category.key] = int(value)
        else:
            raise PauseLengthError(value)
    return chosen


@router.get("/preferences")
def request_link_page(request: Request) -> Response:
    return _request_page(request)


def _send_link(state: WebState, address: str) -> None:
    """Queue the link email for a known address unless one went out within the interval."""
    interval = timedelta(seconds=state.settings.preferences_link_interval_seconds)
    with state.sessions.begin() as session:
        digest = address_hash(state.settings.hash_key, address)
        recipient = session.scalars(
            select(Recipient).where(Recipient.email_hash == digest, Recipient.erased_at.is_(None))
        ).first()
        if recipient is None:
            return
        recent = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.recipient_id == recipient.id,
                Notification.template == LINK_TEMPLATE,
                Notification.created_at > utcnow() - interval,
            )
        )
        if recent:
            return
        request = NotificationRequest(LINK_TEMPLATE, recipient.user_id, None, {})
        accepted = outbox.submit(
            session, None, request, max_data_bytes=1024, hash_key=state.settings.hash_key
        )
    state.publisher.submit(accepted.id, accepted.category)


@router.post("/preferences")
async def request_link(request: Request) -> Response:
    form = await lenient_form(request)
    raw = (form.get("email") or [""])[0]
    try:
        address = normalised_email(raw)
    except ValueError:
        address = None
    if address is not None:
        await run_in_threadpool(_send_link, web_state(request), address)
    return _request_page(request, sent=True)
