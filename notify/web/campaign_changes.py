"""Schedule, pause, resume or cancel a campaign, for the API and the console alike: the state
change and its audit entry in one transaction, then (after a resume) the batches published."""

from __future__ import annotations

from notify.campaigns import lifecycle
from notify.delivery.enqueue import after_resume
from notify.models import Campaign, Operator
from notify.operators import audit
from notify.web.state import WebState

ACTIONS = ("schedule", "pause", "resume", "cancel")


class NoSuchCampaignError(LookupError):
    pass


def change_campaign(
    state: WebState,
    campaign_id: int,
    action: str,
    *,
    operator: Operator | None = None,
    actor: str | None = None,
) -> Campaign:
    """Apply ``action``; raises :class:`NoSuchCampaignError` or
    :class:`notify.campaigns.lifecycle.CampaignStateError` (nothing changed)."""
    settings = state.settings
    with state.sessions.begin() as session:
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
            session, f"campaign.{action}", f"campaign:{campaign_id}", operator=operator, actor=actor
        )
    if action == "resume":
        after_resume(state.celery, campaign_id)
    return campaign
