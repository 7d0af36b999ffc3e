"""``notify campaigns …``: product-update campaigns from the command line."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import select

from notify.campaigns import lifecycle as campaigns
from notify.campaigns.lifecycle import CampaignDraft, CampaignStateError
from notify.cli.support import fail, json_object, sessions_for, settings
from notify.message.template_data import InvalidFieldError
from notify.message.templates import TemplateNotFoundError
from notify.models import Campaign, CampaignStatus

campaigns_app = typer.Typer(help="Product-update campaigns.", no_args_is_help=True)
FINISHED = {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} is not an ISO 8601 time like 2026-12-01T10:00:00+00:00")


@campaigns_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="A name for people.")],
    template: Annotated[str, typer.Option(help="A non-essential template.")],
    data: Annotated[str, typer.Option(help="Template variables as JSON.")] = "{}",
    send_at: Annotated[str | None, typer.Option(help="Aware ISO time.")] = None,
    send_at_local: Annotated[
        str | None, typer.Option(help="Local wall time per recipient.")
    ] = None,
    locale: Annotated[list[str] | None, typer.Option(help="Only these locales.")] = None,
    user_id: Annotated[
        list[str] | None, typer.Option("--user-id", help="Only these users.")
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option(help="Messages per second.", min=0.001, max=100_000)
    ] = None,
) -> None:
    """Create a draft campaign and print its id."""
    at = _parse_time(send_at, "--send-at")
    local = _parse_time(send_at_local, "--send-at-local")
    if at is not None and at.tzinfo is None:
        fail("--send-at needs a time zone offset")
    if local is not None and local.tzinfo is not None:
        fail("--send-at-local is a wall-clock time without offset")
    draft = CampaignDraft(
        name=name,
        template=template,
        data=json_object(data, "--data"),
        send_at=at,
        send_at_local=local,
        locales=tuple(locale or ()),
        rate_limit=rate_limit,
    )
    config = settings()
    try:
        with sessions_for(config).begin() as session:
            campaign = campaigns.create(
                session, draft, created_by="cli", max_data_bytes=config.max_data_bytes
            )
            campaign_id = campaign.id
    except TemplateNotFoundError:
        fail(f"unknown template {template!r}")
    except InvalidFieldError as error:
        fail(f"{'.'.join(error.loc)} {error.msg}")
    typer.echo(campaign_id)


def _change(campaign_id: int, action: str) -> None:
    config = settings()
    try:
        with sessions_for(config).begin() as session:
            if session.get(Campaign, campaign_id) is None:
                fail(f"no campaign {campaign_id}")
            status = campaigns.change(
                session,
                campaign_id,
                action,
                defaults=config.default_subscriptions,
                default_timezone=config.default_timezone,
            ).status
    except CampaignStateError as error:
        fail(str(error))
    if action == "resume":
        from notify.celery_app import create_celery
        from notify.delivery.enqueue import after_resume

        after_resume(create_celery(config), campaign_id)
    typer.echo(f"campaign {campaign_id} is {status}")


@campaigns_app.command("schedule")
def schedule(campaign_id: int) -> None:
    """Schedule a draft, or confirm one held as stale."""
    _change(campaign_id, "schedule")


@campaigns_app.command("pause")
def pause(campaign_id: int) -> None:
    _change(campaign_id, "pause")


@campaigns_app.command("resume")
def resume(campaign_id: int) -> None:
    _change(campaign_id, "resume")


@campaigns_app.command("cancel")
def cancel(campaign_id: int) -> None:
    _change(campaign_id, "cancel")


@campaigns_app.command("list")
def list_campaigns() -> None:
    table = Table("id", "name", "template", "status", "start", "sent", "pending")
    with sessions_for(settings())() as session:
        for campaign in session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(50)):
            counts = campaigns.progress(session, campaign.id).counts
            start = campaign.start_at.isoformat(timespec="minutes") if campaign.start_at else ""
            table.add_row(
                str(campaign.id),
                campaign.name,
                campaign.template,
                campaign.status,
                start,
                str(counts["sent"]),
                str(counts["pending"]),
            )
    Console().print(table)


@campaigns_app.command("watch")
def watch(
    campaign_id: int,
    interval: Annotated[float, typer.Option(help="Seconds between updates.", min=0.2)] = 1.0,
) -> None:
    """A live progress bar until the campaign completes or is cancelled (Ctrl-C to leave)."""
    sessions = sessions_for(settings())
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task(f"campaign {campaign_id}", total=None, detail="")
        while True:
            with sessions() as session:
                campaign = session.get(Campaign, campaign_id)
                if campaign is None:
                    fail(f"no campaign {campaign_id}")
                progress = campaigns.progress(session, campaign_id)
                status = campaign.status
            counts = progress.counts
            done = counts["sent"] + counts["suppressed"] + counts["failed"] + counts["cancelled"]
            detail = (
                f"{status} · sent {counts['sent']} · suppressed {counts['suppressed']} · "
                f"failed {counts['failed']} · {progress.rate_per_second}/s"
            )
            bar.update(task, completed=done, total=done + counts["pending"], detail=detail)
            if status in FINISHED:
                break
            time.sleep(interval)


@campaigns_app.command("preview")
def preview(
    campaign_id: int,
    user_id: Annotated[str | None, typer.Option("--user-id", help="Render for this user.")] = None,
) -> None:
    """Print the message a user (or a sample recipient) would get; nothing is sent."""
    from notify.message.composing import preview_message
    from notify.people import recipients

    config = settings()
    with sessions_for(config)() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            fail(f"no campaign {campaign_id}")
        person = None
        if user_id:
            try:
                person = recipients.require_live(session, user_id)
            except recipients.UnknownRecipientError:
                fail(f"no user {user_id!r}")
        message = preview_message(
            config,
            template=campaign.template,
            data=campaign.data,
            email=person.email if person and person.email else "recipient@example.com",
            recipient_public_id=person.public_id if person else "preview",
            locale=person.locale if person else None,
        )
    typer.echo(message.as_string())
