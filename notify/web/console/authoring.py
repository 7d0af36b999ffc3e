"""Writing a campaign in the console: a Markdown draft (subject, preheader, body, the language
they are written in and, optionally, the same in each other shipped language; audience by
locale, send time, rate) and its preview for a chosen or random recipient, in their language or
a chosen one, at desktop and phone width, with its text part, headers and who would get a
fallback.

Drafts are made by :func:`notify.campaigns.lifecycle.create`, the API's own; the preview by
:func:`notify.message.composing.preview_message` with a masked address and placeholder links,
like ``POST /v1/campaigns/{id}/preview``.
"""

from __future__ import annotations

import email
import json
from datetime import datetime
from email import policy
from email.message import EmailMessage
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from jinja2 import TemplateError
from sqlalchemy import func, select

from notify.campaigns import changes
from notify.campaigns import preview as campaign_preview
from notify.campaigns.audience import AudienceFilter, subscribed_audience
from notify.campaigns.lifecycle import CampaignDraft, CampaignStateError
from notify.delivery.transport import DeliveryError
from notify.i18n.locales import SHIPPED_LOCALES, own_name, shipped
from notify.message.template_data import InvalidFieldError
from notify.message.templates import catalogue
from notify.message.validation import locale_tag
from notify.models import Campaign, CampaignStatus, Recipient
from notify.operators import audit
from notify.people.user_row import ATTRIBUTE_KEY
from notify.web.console import sessions
from notify.web.console.common import FormText, console_page, gate, refused
from notify.web.state import web_state

router = APIRouter(prefix="/console", include_in_schema=False)
MARKDOWN_TEMPLATE = "markdown_update"
MAX_USER_IDS = 30_000  # as the API's audience takes: one bound parameter each
TRANSLATED = ("subject", "preheader", "body")  # what a Markdown campaign writes per language
EXAMPLE_BODY = (
    '# A headline\n\nHello {{ recipient.first_name | default("there", true) }},\n\n'
    "Write the news here. **Bold**, *italic*, lists and [links](https://example.com) work.\n"
)


def _form(
    request: Request,
    signed: sessions.SignedIn,
    values: dict[str, str],
    campaign_id: int | None = None,
    **extra: Any,
) -> Response:
    action = (
        "/console/campaigns/new"
        if campaign_id is None
        else f"/console/campaigns/{campaign_id}/edit"
    )
    templates = [
        (template.name, template.description)
        for template in catalogue().values()
        if not template.category.essential and template.name != MARKDOWN_TEMPLATE
    ]
    context = {
        "values": values,
        "example": EXAMPLE_BODY,
        "action": action,
        "templates": templates,
        "languages": _languages(),
        **extra,
    }
    status = 400 if extra.get("problems") else 200
    return console_page(request, "new_campaign.html", context, signed=signed, status_code=status)


@router.get("/campaigns/new")
def new_campaign_form(request: Request) -> Response:
    with web_state(request).sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
    default = shipped(web_state(request).settings.default_locale)
    return _form(request, signed, {"body": EXAMPLE_BODY, "language": default})


def _languages() -> list[tuple[str, str]]:
    return [(tag, own_name(tag)) for tag in SHIPPED_LOCALES]


def _markdown_data(values: dict[str, str], default_locale: str) -> tuple[list[str], dict[str, Any]]:
    """A Markdown campaign's ``data`` from the form: the content, the language it is written in
    (left out when it is the default) and each other language's content that was filled in."""
    data: dict[str, Any] = {"subject": values["subject"], "body": values["body"]}
    if values["preheader"].strip():
        data["preheader"] = values["preheader"]
    language = values["language"] or default_locale
    if language not in SHIPPED_LOCALES:
        return [f"Written in: choose one of {', '.join(SHIPPED_LOCALES)}."], data
    if language != default_locale:
        data["language"] = language
    translations: dict[str, dict[str, str]] = {}
    for tag in SHIPPED_LOCALES:
        given = {name: values[f"{name}_{tag}"] for name in TRANSLATED}
        if not any(value.strip() for value in given.values()):
            continue
        if tag == language:
            why = f"{own_name(tag)}: the campaign itself is written in {own_name(tag)}"
            return [f"{why}; leave these fields empty or choose another language."], data
        translations[tag] = {name: value for name, value in given.items() if value.strip()}
    if translations:
        data["translations"] = translations
    return [], data


def _field_label(loc: tuple[str, ...]) -> str:
    """How the form names the field of a problem's ``loc`` (``data.translations.de.body`` is
    "Deutsch body")."""
    if len(loc) >= 4 and loc[:2] == ("data", "translations"):
        return f"{own_name(loc[2]) if loc[2] in SHIPPED_LOCALES else loc[2]} {loc[3]}"
    return loc[-1].capitalize()


def _problems(
    values: dict[str, str], default_locale: str
) -> tuple[list[str], CampaignDraft | None]:
    """The draft the form describes, or what is wrong with it (one line per field)."""
    problems = []
    if any("\x00" in value for value in values.values()):
        return ["A field holds a NUL character, which cannot be stored."], None
    if not values["name"].strip():
        problems.append("Name: give the campaign a name.")
    send_at_local = send_at = None
    if values["send_at_local"].strip():
        try:
            send_at_local = datetime.fromisoformat(values["send_at_local"].strip())
        except ValueError:
            problems.append("Local time: use a date and time such as 2026-12-01T10:00.")
        if send_at_local is not None and send_at_local.tzinfo is not None:
            problems.append("Local time: leave out the offset; each person's own zone applies.")
    if values["send_at"].strip():
        try:
            send_at = datetime.fromisoformat(values["send_at"].strip())
        except ValueError:
            send_at = None
        if send_at is None or send_at.tzinfo is None:
            problems.append("Send at: a time with its offset, such as 2026-12-01T10:00+01:00.")
    rate = None
    if values["rate_limit"].strip():
        try:
            rate = float(values["rate_limit"])
            if not 0.001 <= rate <= 100_000:
                raise ValueError
        except ValueError:
            problems.append("Rate: a number of messages a second, from 0.001 to 100000.")
    if problems:
        return problems, None
    template = values["template"] or MARKDOWN_TEMPLATE
    data: dict[str, Any]
    if template == MARKDOWN_TEMPLATE:
        wrong, data = _markdown_data(values, default_locale)
        if wrong:
            return wrong, None
    else:
        try:
            data = json.loads(values["variables"] or "{}")
        except ValueError as error:
            return [f"Template variables: not valid JSON ({error})."], None
        if not isinstance(data, dict):
            return ['Template variables: a JSON object, such as {"headline": "…"}.'], None
    attributes = []
    for line in values["attributes"].splitlines():
        if not line.strip():
            continue
        key, equals, wanted = line.partition("=")
        if not equals or not ATTRIBUTE_KEY.match(key.strip()):
            problems.append(f"Attributes: write each as key=value, such as plan=pro ({line!r}).")
            return problems, None
        attributes.append((key.strip(), wanted.strip()))
    locales = tuple(part.strip() for part in values["locales"].split(",") if part.strip())
    for locale in locales:
        try:
            locale_tag(locale)
        except ValueError as error:
            return [f"Locales: {locale[:40]!r} {error}."], None
    user_ids = tuple(dict.fromkeys(part.strip() for part in values["user_ids"].split() if part))
    if len(user_ids) > MAX_USER_IDS:
        return [f"User ids: at most {MAX_USER_IDS:,} (an import list is better for more)."], None
    if any(len(user_id) > 200 or "/" in user_id for user_id in user_ids):
        return ["User ids: each is at most 200 characters, without '/'."], None
    draft = CampaignDraft(
        name=values["name"].strip()[:200],
        template=template,
        data=data,
        send_at=send_at,
        send_at_local=send_at_local,
        locales=locales,
        user_ids=user_ids,
        rate_limit=rate,
        attributes=tuple(sorted(dict(attributes).items())),
    )
    return [], draft


def _save(
    request: Request, values: dict[str, str], csrf: str, campaign_id: int | None = None
) -> Response:
    """Create a draft (``campaign_id`` None) or replace one from the form's ``values``."""
    state = web_state(request)
    with state.sessions.begin() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
            return refused(request)
        if campaign_id is not None:
            stored = session.get(Campaign, campaign_id)
            if stored is None:
                return console_page(request, "missing.html", {}, signed=signed, status_code=404)
        problems, draft = _problems(values, shipped(state.settings.default_locale))
        if draft is None:
            return _form(request, signed, values, campaign_id, problems=problems)
        limit = state.settings.max_data_bytes
        try:
            if campaign_id is None:
                campaign = changes.create(
                    session, draft, max_data_bytes=limit, operator=signed.operator
                )
            else:
                campaign = changes.update(
                    session, campaign_id, draft, max_data_bytes=limit, operator=signed.operator
                )
        except InvalidFieldError as error:
            shown = [f"{_field_label(p.loc)}: {p.msg}" for p in error.problems]
            return _form(request, signed, values, campaign_id, problems=shown)
        except CampaignStateError as error:
            context = {"why": str(error), "campaign_id": campaign_id}
            return console_page(request, "refused.html", context, signed=signed, status_code=409)
        saved = campaign.id
    return RedirectResponse(f"/console/campaigns/{saved}/preview", status_code=303)


FIELDS = (
    "template",
    "variables",
    "name",
    "subject",
    "preheader",
    "body",
    "language",
    *(f"{name}_{tag}" for tag in SHIPPED_LOCALES for name in TRANSLATED),
    "locales",
    "user_ids",
    "attributes",
    "send_at",
    "send_at_local",
    "rate_limit",
)


async def _posted(request: Request) -> dict[str, str]:
    """The campaign form's fields (each "" when absent) and its ``csrf``: one reading of the
    body for both the new and the edit form."""
    form = await request.form(max_files=0, max_fields=50)
    return {name: str(form.get(name, "")) for name in (*FIELDS, "csrf")}


CampaignForm = Annotated[dict[str, str], Depends(_posted)]


@router.post("/campaigns/new")
def new_campaign(request: Request, posted: CampaignForm) -> Response:
    csrf = posted.pop("csrf")
    return _save(request, posted, csrf)


def _values_of(campaign: Campaign, default_locale: str) -> dict[str, str]:
    """The form's fields for a Markdown draft as it is stored."""
    data, audience = campaign.data, campaign.audience
    written_here = campaign.template == MARKDOWN_TEMPLATE
    translations = data.get("translations") if written_here else None
    in_other_languages = (
        {
            f"{name}_{tag}": str(translations.get(tag, {}).get(name, ""))
            for tag in SHIPPED_LOCALES
            for name in TRANSLATED
        }
        if isinstance(translations, dict)
        else {}
    )
    return {
        "language": str(data.get("language") or default_locale),
        **in_other_languages,
        "template": campaign.template,
        "variables": "" if written_here else json.dumps(data, indent=2, ensure_ascii=False),
        "name": campaign.name,
        "subject": str(data.get("subject", "")),
        "preheader": str(data.get("preheader", "")),
        "body": str(data.get("body", "")),
        "locales": ", ".join(audience.get("locales") or []),
        "user_ids": "\n".join(audience.get("user_ids") or []),
        "attributes": "\n".join(f"{k}={v}" for k, v in (audience.get("attributes") or {}).items()),
        "send_at": campaign.send_at.isoformat(timespec="minutes") if campaign.send_at else "",
        "send_at_local": campaign.send_at_local or "",
        "rate_limit": "" if campaign.rate_limit is None else f"{campaign.rate_limit:g}",
    }


@router.get("/campaigns/{campaign_id}/edit")
def edit_campaign_form(request: Request, campaign_id: int) -> Response:
    with web_state(request).sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            return console_page(request, "missing.html", {}, signed=signed, status_code=404)
        if campaign.status != CampaignStatus.DRAFT:
            why = "Only a draft can be edited."
            context = {"why": why, "campaign_id": campaign_id}
            return console_page(request, "refused.html", context, signed=signed, status_code=409)
        default = shipped(web_state(request).settings.default_locale)
        return _form(request, signed, _values_of(campaign, default), campaign_id)


@router.post("/campaigns/{campaign_id}/edit")
def edit_campaign(request: Request, campaign_id: int, posted: CampaignForm) -> Response:
    csrf = posted.pop("csrf")
    return _save(request, posted, csrf, campaign_id)


def _parts(message: Any) -> dict[str, Any]:
    parsed: EmailMessage = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    shown = (
        "From",
        "To",
        "Subject",
        "Content-Language",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
    )
    return {
        "subject": str(parsed["Subject"]),
        "headers": [(name, str(parsed[name])) for name in shown if parsed[name] is not None],
        "text": text.get_content() if text is not None else "",
        "html": html.get_content() if html is not None else "",
    }


@router.get("/campaigns/{campaign_id}/preview")
def preview_page(
    request: Request, campaign_id: int, user_id: str = "", sent: str = "", language: str = ""
) -> Response:
    """The campaign as a chosen (or a random) person of its audience gets it: in their own
    language, or in ``language`` (one of the shipped ones) as if it were theirs."""
    state = web_state(request)
    settings = state.settings
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            return console_page(request, "missing.html", {}, signed=signed, status_code=404)
        narrow = AudienceFilter.from_json(campaign.audience)
        audience = subscribed_audience(campaign.category, settings.default_subscriptions, narrow)
        chosen = audience.with_only_columns(Recipient.id, Recipient.attributes)
        if user_id:
            chosen = chosen.where(Recipient.user_id == user_id[:200])
        else:
            chosen = chosen.order_by(func.random())
        # Attributes are decided after decryption: the first of a few that is in the audience.
        recipient_id = next(
            (row[0] for row in session.execute(chosen.limit(50)) if narrow.admits(row[1])), None
        )
        person = session.get(Recipient, recipient_id) if recipient_id is not None else None
        try:
            as_language = language if language in SHIPPED_LOCALES else None
            shown = campaign_preview.preview(
                session, settings, campaign, person, locale=as_language
            )
        except TemplateError as error:
            why = f"This campaign cannot be rendered for this person: {error.message}"
            context = {"why": why, "campaign_id": campaign_id}
            return console_page(request, "refused.html", context, signed=signed, status_code=422)
        context = {
            "campaign": campaign,
            "person": person.user_id if person is not None else None,
            "asked": user_id,
            "lacks": shown.lacks,
            "sent": sent == "1",
            "report": shown.fallbacks,
            "languages": _languages(),
            "language": as_language or "",
            **_parts(shown.message),
        }
        return console_page(request, "preview.html", context, signed=signed)


@router.post("/campaigns/{campaign_id}/test")
def send_test(
    request: Request, campaign_id: int, csrf: FormText = "", user_id: FormText = ""
) -> Response:
    """The campaign's message, as the previewed person would get it, to the operator's own
    address, at once; audited."""
    state = web_state(request)
    with state.sessions.begin() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
            return refused(request)
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            return console_page(request, "missing.html", {}, signed=signed, status_code=404)
        person = None
        if user_id:
            chosen = select(Recipient).where(Recipient.user_id == user_id[:200])
            person = session.scalars(chosen).first()
        try:
            campaign_preview.send_test(state.settings, campaign, person, signed.operator.email)
        except DeliveryError as error:
            context = {"why": f"The test was not sent: {error}", "campaign_id": campaign_id}
            return console_page(request, "refused.html", context, signed=signed, status_code=502)
        except TemplateError as error:
            why = f"The test was not sent: the campaign cannot be rendered ({error.message})."
            context = {"why": why, "campaign_id": campaign_id}
            return console_page(request, "refused.html", context, signed=signed, status_code=422)
        audit.record(session, "campaign.test", f"campaign:{campaign_id}", operator=signed.operator)
    target = f"/console/campaigns/{campaign_id}/preview?sent=1"
    if user_id:
        target += f"&user_id={quote(user_id[:200])}"
    return RedirectResponse(target, status_code=303)
