"""Creating and changing campaigns on someone's behalf, for the API, the console and the
command line alike: the change and its audit entry are committed together, and after a
resume the campaign's work is published."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from notify.campaigns import lifecycle
from notify.campaigns.lifecycle import CampaignDraft
from notify.config import Settings
from notify.db import SessionFactory, is_deadlock
from notify.delivery.enqueue import after_resume
from notify.models import Campaign, Operator
from notify.operators import audit

ACTIONS = ("schedule", "pause", "resume", "cancel")
DEADLOCK_RETRIES = 3
log = logging.getLogger(__name__)


class NoSuchCampaignError(LookupError):
    pass


def create(
    session: Session,
    draft: CampaignDraft,
    *,
    max_data_bytes: int,
    operator: Operator | None = None,
    actor: str | None = None,
) -> Campaign:
    """:func:`notify.campaigns.lifecycle.create`, audited as ``campaign.create``."""
    campaign = lifecycle.create(
        session,
        draft,
        created_by=operator.email if operator is not None else actor,
        max_data_bytes=max_data_bytes,
    )
    audit.record(
        session, "campaign.create", f"campaign:{campaign.id}", operator=operator, actor=actor
    )
    return campaign


def update(
    session: Session,
    campaign_id: int,
    draft: CampaignDraft,
    *,
    max_data_bytes: int,
    operator: Operator | None = None,
    actor: str | None = None,
) -> Campaign:
    """:func:`notify.campaigns.lifecycle.update_draft`, audited as ``campaign.edit``."""
    campaign = lifecycle.update_draft(session, campaign_id, draft, max_data_bytes=max_data_bytes)
    audit.record(
        session, "campaign.edit", f"campaign:{campaign_id}", operator=operator, actor=actor
    )
    return campaign


def change(
    sessions: SessionFactory,
    settings: Settings,
    celery: Celery,
    campaign_id: int,
    action: str,
    *,
    operator: Operator | None = None,
    actor: str | None = None,
) -> Campaign:
    """Schedule, pause, resume or cancel; raises :class:`NoSuchCampaignError` or
    :class:`notify.campaigns.lifecycle.CampaignStateError` (nothing changed then).

    A cancel marks every queued message of the campaign in one statement, while running
    batches claim theirs a group at a time in another order; PostgreSQL breaks the deadlock
    this can make by rolling one of them back. The change is then made again, up to
    :data:`DEADLOCK_RETRIES` times (a batch whose claim is rolled back instead stops and is
    handed back, to be sent by a later run)."""
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            with sessions.begin() as session:
                if session.get(Campaign, campaign_id) is None:
                    raise NoSuchCampaignError(campaign_id)
                campaign = lifecycle.change(
                    session,
                    campaign_id,
                    action,
                    defaults=settings.default_subscriptions,
                    default_timezone=settings.default_timezone,
                )
                audit.record(
                    session,
                    f"campaign.{action}",
                    f"campaign:{campaign_id}",
                    operator=operator,
                    actor=actor,
                )
            break
        except OperationalError as error:
            if not is_deadlock(error) or attempt == DEADLOCK_RETRIES:
                raise
            log.info("campaign %s: %s met a deadlock; making it again", campaign_id, action)
    if action == "resume":
        after_resume(celery, campaign_id)
    return campaign
