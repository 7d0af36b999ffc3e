"""Writing a campaign in the console: a Markdown draft (subject, preheader, body, audience by
locale, send time, rate) and its preview for a chosen or random recipient, at desktop and
phone width, with its text part, headers and who would get a fallback.

Drafts are made by :func:`notify.campaigns.lifecycle.create`, the API's own; the preview by
:func:`notify.message.composing.preview_message` with a masked address and placeholder links,
like ``POST /v1/campaigns/{id}/preview``.
"""

from __future__ import annotations

import email
from datetime import datetime
from email import policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select

from notify.campaigns import changes
from notify.campaigns import preview as campaign_preview
from notify.campaigns.audience import AudienceFilter, subscribed_audience
from notify.campaigns.lifecycle import CampaignDraft
from notify.delivery.transport import DeliveryError
from notify.message.template_data import InvalidFieldError
from notify.models import Campaign, Recipient
from notify.operators import audit
from notify.web.console import sessions
from notify.web.console.common import FormText, console_page, gate, refused
from notify.web.state import web_state

router = APIRouter(prefix="/console", include_in_schema=False)
MARKDOWN_TEMPLATE = "markdown_update"
EXAMPLE_BODY = (
    '# A headline\n\nHello {{ recipient.first_name | default("there", true) }},\n\n'
    "Write the news here. **Bold**, *italic*, lists and [links](https://example.com) work.\n"
)


def _form(
    request: Request, signed: sessions.SignedIn, values: dict[str, str], **extra: Any
) -> Response:
    context = {"values": values, "example": EXAMPLE_BODY, **extra}
    status = 400 if extra.get("problems") else 200
    return console_page(request, "new_campaign.html", context, signed=signed, status_code=status)


@router.get("/campaigns/new")
def new_campaign_form(request: Request) -> Response:
    with web_state(request).sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
    return _form(request, signed, {"body": EXAMPLE_BODY})


def _problems(values: dict[str, str]) -> tuple[list[str], CampaignDraft | None]:
    """The draft the form describes, or what is wrong with it (one line per field)."""
    problems = []
    if not values["name"].strip():
        problems.append("Name: give the campaign a name.")
    send_at_local = None
    if values["send_at_local"].strip():
        try:
            send_at_local = datetime.fromisoformat(values["send_at_local"].strip())
        except ValueError:
            problems.append("Send at: use a date and time such as 2026-12-01T10:00.")
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
    data = {"subject": values["subject"], "body": values["body"]}
    if values["preheader"].strip():
        data["preheader"] = values["preheader"]
    locales = tuple(part.strip() for part in values["locales"].split(",") if part.strip())
    draft = CampaignDraft(
        name=values["name"].strip()[:200],
        template=MARKDOWN_TEMPLATE,
        data=data,
        send_at_local=send_at_local,
        locales=locales,
        rate_limit=rate,
    )
    return [], draft


@router.post("/campaigns/new")
def new_campaign(
    request: Request,
    csrf: FormText = "",
    name: FormText = "",
    subject: FormText = "",
    preheader: FormText = "",
    body: FormText = "",
    locales: FormText = "",
    send_at_local: FormText = "",
    rate_limit: FormText = "",
) -> Response:
    state = web_state(request)
    values = {
        "name": name, "subject": subject, "preheader": preheader, "body": body,
        "locales": locales, "send_at_local": send_at_local, "rate_limit": rate_limit,
    }  # fmt: skip
    with state.sessions.begin() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        if not sessions.csrf_ok(state.settings, signed.nonce, csrf):
            return refused(request)
        problems, draft = _problems(values)
        if draft is None:
            return _form(request, signed, values, problems=problems)
        try:
            campaign = changes.create(
                session,
                draft,
                max_data_bytes=state.settings.max_data_bytes,
                operator=signed.operator,
            )
        except InvalidFieldError as error:
            shown = [f"{'.'.join(p.loc[-1:]).capitalize()}: {p.msg}" for p in error.problems]
            return _form(request, signed, values, problems=shown)
        campaign_id = campaign.id
    return RedirectResponse(f"/console/campaigns/{campaign_id}/preview", status_code=303)


def _parts(message: Any) -> dict[str, Any]:
    parsed: EmailMessage = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    shown = ("From", "To", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")
    return {
        "subject": str(parsed["Subject"]),
        "headers": [(name, str(parsed[name])) for name in shown if parsed[name] is not None],
        "text": text.get_content() if text is not None else "",
        "html": html.get_content() if html is not None else "",
    }


@router.get("/campaigns/{campaign_id}/preview")
def preview_page(request: Request, campaign_id: int, user_id: str = "", sent: str = "") -> Response:
    state = web_state(request)
    settings = state.settings
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            return console_page(request, "missing.html", {}, signed=signed, status_code=404)
        audience = subscribed_audience(
            campaign.category,
            settings.default_subscriptions,
            AudienceFilter.from_json(campaign.audience),
        )
        chosen = audience.with_only_columns(Recipient.id)
        if user_id:
            chosen = chosen.where(Recipient.user_id == user_id[:200])
        else:
            chosen = chosen.order_by(func.random())
        recipient_id = session.scalar(chosen.limit(1))
        person = session.get(Recipient, recipient_id) if recipient_id is not None else None
        shown = campaign_preview.preview(session, settings, campaign, person)
        context = {
            "campaign": campaign,
            "person": person.user_id if person is not None else None,
            "asked": user_id,
            "lacks": shown.lacks,
            "sent": sent == "1",
            "report": shown.fallbacks,
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
        audit.record(session, "campaign.test", f"campaign:{campaign_id}", operator=signed.operator)
    target = f"/console/campaigns/{campaign_id}/preview?sent=1"
    if user_id:
        target += f"&user_id={quote(user_id[:200])}"
    return RedirectResponse(target, status_code=303)
