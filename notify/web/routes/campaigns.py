"""``/v1/campaigns``: create, schedule, pause, resume, cancel, watch and preview campaigns."""

from __future__ import annotations

import email
from datetime import datetime
from email import policy
from email.message import EmailMessage
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from jinja2 import TemplateError
from pydantic import BaseModel, Field, WithJsonSchema
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.campaigns import changes
from notify.campaigns import lifecycle as campaigns
from notify.campaigns import preview as campaign_preview
from notify.campaigns.lifecycle import CampaignDraft, CampaignStateError
from notify.models import Campaign
from notify.people import recipients
from notify.people.user_row import ATTRIBUTE_KEY, MAX_ATTRIBUTE_TEXT
from notify.producers.api_keys import Caller
from notify.web.auth import require_scope
from notify.web.responses import API_ERRORS, also
from notify.web.schemas import AwareTime, CampaignId, Locale, LocalTime, Strict, UserId
from notify.web.state import WebState, web_state

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], responses=API_ERRORS)
Reader = Annotated[Caller, Depends(require_scope("campaigns:read"))]
Writer = Annotated[Caller, Depends(require_scope("campaigns:write"))]


AttributeKey = Annotated[str, Field(pattern=ATTRIBUTE_KEY.pattern)]


class AudienceIn(Strict):
    locales: list[Locale] = Field(default_factory=list, max_length=100)
    # Each id is one bound parameter; PostgreSQL takes at most 65,535 in one statement.
    user_ids: list[UserId] = Field(default_factory=list, max_length=30_000)
    attributes: Annotated[
        dict[AttributeKey, Annotated[str, Field(max_length=MAX_ATTRIBUTE_TEXT)]],
        WithJsonSchema(
            {
                "type": "object",
                "maxProperties": 20,
                "propertyNames": {"pattern": ATTRIBUTE_KEY.pattern},
                "additionalProperties": {"type": "string", "maxLength": MAX_ATTRIBUTE_TEXT},
                "description": "people whose attributes have each of these values (compared as"
                " text: true, false and numbers as JSON writes them)",
            }
        ),
    ] = Field(default_factory=dict, max_length=20)


class CampaignIn(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")
    template: str = Field(max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)
    send_at: AwareTime | None = None
    send_at_local: LocalTime | None = None
    audience: AudienceIn = Field(default_factory=AudienceIn)
    rate_limit: float | None = Field(default=None, gt=0, le=100_000, description="messages/second")


class CampaignOut(BaseModel):
    id: int
    name: str
    template: str
    category: str
    status: str
    status_reason: str | None
    send_at: datetime | None
    send_at_local: str | None
    start_at: datetime | None
    rate_limit: float | None
    audience: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int] | None = None
    rate_per_second: float | None = None
    seconds_left: float | None = None
    unsubscribes: int | None = Field(
        default=None, description="unsubscribes through links in this campaign's messages"
    )


class PreviewIn(Strict):
    user_id: UserId | None = None


class FallbacksOut(BaseModel):
    """Who in the audience lacks each personal field the template reads, and so gets the
    template's fallback there."""

    fields: list[str]
    scanned: int
    complete: bool
    lacking: dict[str, int]
    examples: dict[str, list[str]]


class PreviewOut(BaseModel):
    headers: dict[str, str]
    subject: str
    text: str
    html: str
    fallbacks: list[str] = Field(
        default_factory=list,
        description="personal fields the previewed recipient lacks (their fallback was used)",
    )
    audience_fallbacks: FallbacksOut


def _get(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise HTTPException(404, "no such campaign")
    return campaign


def _out(session: Session, campaign: Campaign, *, with_progress: bool = True) -> CampaignOut:
    out = CampaignOut.model_validate(campaign, from_attributes=True)
    if with_progress:
        progress = campaigns.progress(session, campaign.id)
        out.counts = progress.counts
        out.rate_per_second = progress.rate_per_second
        out.seconds_left = progress.seconds_left
        out.unsubscribes = progress.unsubscribes
    return out


@router.post("", status_code=201, response_model=CampaignOut, responses=also(400, 404))
def create_campaign(body: CampaignIn, request: Request, caller: Writer) -> CampaignOut:
    """A draft. The template must be of a non-essential category (422 otherwise)."""
    state = web_state(request)
    draft = CampaignDraft(
        name=body.name,
        template=body.template,
        data=body.data,
        send_at=body.send_at,
        send_at_local=body.send_at_local,
        locales=tuple(body.audience.locales),
        user_ids=tuple(body.audience.user_ids),
        rate_limit=body.rate_limit,
        attributes=tuple(sorted(body.audience.attributes.items())),
    )
    with state.sessions.begin() as session:
        campaign = changes.create(
            session, draft, max_data_bytes=state.settings.max_data_bytes, actor=f"key:{caller.name}"
        )
        return _out(session, campaign, with_progress=False)


@router.get("", response_model=list[CampaignOut])
def list_campaigns(request: Request, _: Reader, limit: int = 100) -> list[CampaignOut]:
    with web_state(request).sessions() as session:
        rows = session.scalars(
            select(Campaign).order_by(Campaign.id.desc()).limit(max(1, min(limit, 500)))
        )
        return [_out(session, campaign, with_progress=False) for campaign in rows]


@router.get("/{campaign_id}", response_model=CampaignOut, responses=also(404))
def get_campaign(campaign_id: CampaignId, request: Request, _: Reader) -> CampaignOut:
    with web_state(request).sessions() as session:
        return _out(session, _get(session, campaign_id))


def _change(state: WebState, campaign_id: int, action: str, caller: Caller) -> CampaignOut:
    try:
        changes.change(
            state.sessions,
            state.settings,
            state.celery,
            campaign_id,
            action,
            actor=f"key:{caller.name}",
        )
    except changes.NoSuchCampaignError:
        raise HTTPException(404, "no such campaign") from None
    except CampaignStateError as error:
        raise HTTPException(409, str(error)) from None
    with state.sessions() as session:
        return _out(session, _get(session, campaign_id))


@router.post("/{campaign_id}/schedule", response_model=CampaignOut, responses=also(404, 409))
def schedule_campaign(campaign_id: CampaignId, request: Request, caller: Writer) -> CampaignOut:
    """Schedule a draft (or confirm one held as stale); it starts at its send time."""
    return _change(web_state(request), campaign_id, "schedule", caller)


@router.post("/{campaign_id}/pause", response_model=CampaignOut, responses=also(404, 409))
def pause_campaign(campaign_id: CampaignId, request: Request, caller: Writer) -> CampaignOut:
    return _change(web_state(request), campaign_id, "pause", caller)


@router.post("/{campaign_id}/resume", response_model=CampaignOut, responses=also(404, 409))
def resume_campaign(campaign_id: CampaignId, request: Request, caller: Writer) -> CampaignOut:
    return _change(web_state(request), campaign_id, "resume", caller)


@router.post("/{campaign_id}/cancel", response_model=CampaignOut, responses=also(404, 409))
def cancel_campaign(campaign_id: CampaignId, request: Request, caller: Writer) -> CampaignOut:
    return _change(web_state(request), campaign_id, "cancel", caller)


@router.post("/{campaign_id}/preview", response_model=PreviewOut, responses=also(400, 404))
def preview_campaign(
    campaign_id: CampaignId, request: Request, caller: Writer, body: PreviewIn | None = None
) -> PreviewOut:
    """The message one named user would get (or a sample recipient), headers included;
    nothing is sent or stored. The address is masked and the links are placeholders: a
    ``campaigns:write`` key must not learn an address or get a working unsubscribe link. The
    person's own fields (first name, name, attributes) are shown only to a key that may also
    read users (``users:read``); 422 if the content cannot be rendered for this person."""
    state = web_state(request)
    with state.sessions() as session:
        campaign = _get(session, campaign_id)
        person = None
        if body is not None and body.user_id:
            person = recipients.require_live(session, body.user_id)
        # Never a real address or a working token: a campaigns key may not read people.
        try:
            shown = campaign_preview.preview(
                session,
                state.settings,
                campaign,
                person,
                with_personal_fields="users:read" in caller.scopes,
            )
        except TemplateError as error:
            raise HTTPException(422, f"the campaign cannot be rendered: {error.message}") from None
    message = shown.message
    parsed: EmailMessage = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    return PreviewOut(
        headers={key: str(value) for key, value in parsed.items()},
        subject=str(parsed["Subject"]),
        text=text.get_content() if text is not None else "",
        html=html.get_content() if html is not None else "",
        fallbacks=list(shown.lacks),
        audience_fallbacks=FallbacksOut.model_validate(shown.fallbacks, from_attributes=True),
    )
