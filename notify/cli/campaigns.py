"""``notify campaigns …``: product-update campaigns from the command line."""

from __future__ import annotations

import email
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.campaigns import lifecycle as campaigns
from notify.campaigns.audience import AudienceFilter, FallbackReport, audience_size
from notify.campaigns.lifecycle import CampaignDraft, CampaignStateError
from notify.cli.support import CommandGroup, fail, json_object, sessions_for, settings
from notify.message.template_data import InvalidFieldError
from notify.message.templates import TemplateNotFoundError
from notify.models import Campaign, CampaignStatus

campaigns_app = CommandGroup(help="Product-update campaigns: create, schedule, watch, preview.")
FINISHED = {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
RATE_WINDOW_SECONDS = 10.0
CampaignId = Annotated[
    int, typer.Argument(help="The campaign's id, from `notify campaigns list`.", show_default=False)
]


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} is not an ISO 8601 time like 2026-12-01T10:00:00+00:00")


MARKDOWN_TEMPLATE = "markdown_update"


def _content(
    template: str | None,
    data: dict[str, object],
    markdown: Path | None,
    subject: str | None,
    preheader: str | None,
) -> tuple[str, dict[str, object]]:
    """The template and its data from the options: a named template, or a Markdown body."""
    if markdown is None:
        if subject is not None or preheader is not None:
            fail("--subject and --preheader go with --markdown")
        if template is None:
            fail("give --template NAME (see `notify templates list`) or --markdown FILE")
        return template, data
    if template is not None and template != MARKDOWN_TEMPLATE:
        fail("--markdown takes the place of --template")
    if subject is None:
        fail("--markdown needs --subject")
    try:
        body = markdown.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read {markdown}: {error}")
    content: dict[str, object] = {**data, "subject": subject, "body": body}
    if preheader is not None:
        content["preheader"] = preheader
    return MARKDOWN_TEMPLATE, content


@campaigns_app.command("create")
def create(
    name: Annotated[str, typer.Option(metavar="TEXT", help="A name for people.")],
    template: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="A non-essential template, like product_update (not with --markdown).",
        ),
    ] = None,
    data: Annotated[
        str, typer.Option(metavar="JSON", help="Template variables as a JSON object.")
    ] = "{}",
    markdown: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="The body, written in Markdown (template markdown_update); needs --subject.",
            dir_okay=False,
        ),
    ] = None,
    subject: Annotated[
        str | None, typer.Option(metavar="TEXT", help="The subject of a --markdown campaign.")
    ] = None,
    preheader: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="The preview line of a --markdown campaign."),
    ] = None,
    send_at: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="When to send, with offset: 2026-12-01T10:00+01:00."),
    ] = None,
    send_at_local: Annotated[
        str | None,
        typer.Option(
            metavar="TIME", help="Each recipient's wall-clock time, no offset: 2026-12-01T10:00."
        ),
    ] = None,
    locale: Annotated[
        list[str] | None,
        typer.Option(metavar="LOCALE", help="Only recipients with this locale; repeat for more."),
    ] = None,
    user_id: Annotated[
        list[str] | None,
        typer.Option("--user-id", metavar="ID", help="Only this user; repeat for more."),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            metavar="PER_SECOND",
            help="At most this many messages a second, across all workers.",
            min=0.001,
            max=100_000,
        ),
    ] = None,
) -> None:
    """Create a draft campaign and print its id (then `notify campaigns schedule ID`).

    Its content is a template with --data, or marketing's own: --markdown FILE --subject TEXT
    [--preheader TEXT], where each may greet by {{ recipient.first_name | default("there") }}."""
    template_name, variables = _content(
        template, json_object(data, "--data"), markdown, subject, preheader
    )
    at = _parse_time(send_at, "--send-at")
    local = _parse_time(send_at_local, "--send-at-local")
    if at is not None and at.tzinfo is None:
        fail("--send-at needs a time zone offset")
    if local is not None and local.tzinfo is not None:
        fail("--send-at-local is a wall-clock time without offset")
    draft = CampaignDraft(
        name=name,
        template=template_name,
        data=variables,
        send_at=at,
        send_at_local=local,
        locales=tuple(locale or ()),
        user_ids=tuple(user_id or ()),
        rate_limit=rate_limit,
    )
    from notify.campaigns import changes

    config = settings()
    try:
        with sessions_for(config).begin() as session:
            campaign = changes.create(
                session, draft, max_data_bytes=config.max_data_bytes, actor="cli"
            )
            campaign_id = campaign.id
    except TemplateNotFoundError:
        fail(f"unknown template {template_name!r}")
    except InvalidFieldError as error:
        fail(f"{'.'.join(error.loc)} {error.msg}")
    typer.echo(campaign_id)


def _change(campaign_id: int, action: str) -> None:
    from notify.campaigns import changes
    from notify.celery_app import create_celery

    config = settings()
    try:
        status = changes.change(
            sessions_for(config), config, create_celery(config), campaign_id, action, actor="cli"
        ).status
    except changes.NoSuchCampaignError:
        fail(f"no campaign {campaign_id}")
    except CampaignStateError as error:
        fail(str(error))
    typer.echo(f"campaign {campaign_id} is {status}")


@campaigns_app.command("schedule")
def schedule(campaign_id: CampaignId) -> None:
    """Schedule a draft, or confirm one held as stale."""
    _change(campaign_id, "schedule")


@campaigns_app.command("pause")
def pause(campaign_id: CampaignId) -> None:
    """Pause a running campaign; nothing more is sent until it is resumed."""
    _change(campaign_id, "pause")


@campaigns_app.command("resume")
def resume(campaign_id: CampaignId) -> None:
    """Resume a paused campaign where it stopped."""
    _change(campaign_id, "resume")


@campaigns_app.command("cancel")
def cancel(campaign_id: CampaignId) -> None:
    """Cancel a campaign for good; messages not sent yet never will be."""
    _change(campaign_id, "cancel")


@campaigns_app.command("list")
def list_campaigns() -> None:
    """The 50 newest campaigns: status, start, sent and pending messages."""
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


# --- watch --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One look at a campaign: its status, its messages by outcome and how many there will be."""

    campaign_id: int
    name: str
    status: str
    counts: dict[str, int]
    total: int

    @property
    def done(self) -> int:
        """Messages with an outcome: sent, suppressed, failed or cancelled."""
        return sum(count for outcome, count in self.counts.items() if outcome != "pending")


def snapshot(session: Session, campaign: Campaign, defaults: frozenset[str]) -> Snapshot:
    """The campaign now. ``total`` counts its planned messages and, while it can still send,
    the part of its audience not planned yet, so a campaign not started shows its audience."""
    counts = campaigns.progress(session, campaign.id).counts
    total = sum(counts.values())
    if not campaign.planning_done and campaign.status not in FINISHED:
        narrow = AudienceFilter.from_json(campaign.audience)
        after = campaign.planned_through
        total += audience_size(session, campaign.category, defaults, narrow, after=after)
    return Snapshot(campaign.id, campaign.name, str(campaign.status), counts, total)


class RecentRate:
    """Messages a second over the last ``window`` seconds, from successive counts (the count at
    the start of the window to the newest); None until two counts some time apart are known."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._counts: deque[tuple[float, int]] = deque()

    def add(self, at: float, count: int) -> float | None:
        """Record ``count`` seen at monotonic time ``at``; returns the rate now."""
        self._counts.append((at, count))
        while len(self._counts) > 2 and self._counts[1][0] <= at - self.window:
            self._counts.popleft()
        first_at, first = self._counts[0]
        return (count - first) / (at - first_at) if at > first_at else None


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def frame(
    shot: Snapshot, rate: float | None, window: float = RATE_WINDOW_SECONDS
) -> RenderableType:
    """What `campaigns watch` shows: four lines that fit 80 columns (longer names are cut)."""
    title = Text(no_wrap=True, overflow="ellipsis")
    title.append(f"campaign {shot.campaign_id} ", style="bold")
    title.append(f"{shot.status} · ", style="bold")
    title.append(shot.name)
    share = f"{shot.done * 100 // shot.total}%" if shot.total else "–"
    bar = Table.grid(expand=True, padding=(0, 1))
    bar.add_column(ratio=1)
    bar.add_column(justify="right", no_wrap=True)
    bar.add_row(
        ProgressBar(total=max(shot.total, 1), completed=min(shot.done, shot.total)),
        f"{shot.done:,}/{shot.total:,} {share}",
    )
    counts = shot.counts
    outcomes = Text(
        f"sent {counts.get('sent', 0):,} · suppressed {counts.get('suppressed', 0):,} · "
        f"failed {counts.get('failed', 0):,} · cancelled {counts.get('cancelled', 0):,} · "
        f"pending {counts.get('pending', 0):,}"
    )
    unplanned = shot.total - sum(counts.values())
    if unplanned > 0:
        outcomes.append(f" · not planned yet {unplanned:,}")
    if rate is None:
        pace = "measuring the rate…"
    else:
        pace = f"{rate:,.2f}/s over the last {window:.0f} s"
        left = shot.total - shot.done
        if rate > 0 and left > 0 and shot.status not in FINISHED:
            pace += f" · about {_duration(left / rate)} left"
    return Group(title, bar, outcomes, Text(pace, style="dim"))


@campaigns_app.command("watch")
def watch(
    campaign_id: CampaignId,
    interval: Annotated[
        float, typer.Option(metavar="SECONDS", help="Seconds between updates.", min=0.2)
    ] = 1.0,
) -> None:
    """Live progress until the campaign completes or is cancelled; Ctrl-C leaves.

    Shows the total from the first frame on (the audience, before planning), counts by outcome,
    the rate over the last 10 seconds and the time left."""
    config = settings()
    sessions = sessions_for(config)
    rate = RecentRate()

    def look() -> tuple[Snapshot, float | None]:
        with sessions() as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None:
                fail(f"no campaign {campaign_id}")
            shot = snapshot(session, campaign, config.default_subscriptions)
        return shot, rate.add(time.monotonic(), shot.done)

    shot, per_second = look()
    try:
        with Live(frame(shot, per_second), auto_refresh=False) as live:
            while shot.status not in FINISHED:
                time.sleep(interval)
                shot, per_second = look()
                live.update(frame(shot, per_second), refresh=True)
    except KeyboardInterrupt:
        pass


# --- preview ------------------------------------------------------------------------------------

_PLUMBING = ("mime-version", "content-type", "content-transfer-encoding")


def readable(message: Message, *, html: bool = False) -> str:
    """A message as a person reads it: its headers decoded (no MIME plumbing), a blank line,
    the text part decoded, and with ``html`` the HTML part after it."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    headers = [(name, str(value)) for name, value in parsed.items()]
    shown = [(name, value) for name, value in headers if name.lower() not in _PLUMBING]
    width = max((len(name) for name, _ in shown), default=0) + 1
    lines = [f"{name + ':':<{width}} {' '.join(value.split())}" for name, value in shown]
    text = parsed.get_body(preferencelist=("plain",))
    lines += ["", text.get_content().rstrip("\n") if text is not None else "(no text part)"]
    if html:
        part = parsed.get_body(preferencelist=("html",))
        lines += ["", part.get_content().rstrip("\n") if part is not None else "(no HTML part)"]
    return "\n".join(lines)


def fallbacks_summary(report: FallbackReport, previewed_lacks: tuple[str, ...]) -> str:
    """Which personal fields fall back, for the person shown and across the audience."""
    whom = "of the first" if not report.complete else "of"
    lines = ["Personal fields the template reads (a recipient without one gets its fallback):"]
    for path in report.fields:
        mark = " (fallback in this preview)" if path in previewed_lacks else ""
        line = f"  recipient.{path}: {report.lacking[path]:,} {whom} {report.scanned:,} lack it"
        examples = report.examples[path]
        if examples:
            line += f", e.g. {', '.join(examples[:5])}"
        lines.append(line + mark)
    return "\n".join(lines)


@campaigns_app.command("preview")
def preview(
    campaign_id: CampaignId,
    user_id: Annotated[
        str | None,
        typer.Option(
            "--user-id", metavar="ID", help="Render for this user (default: a sample recipient)."
        ),
    ] = None,
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part too.")] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Print the raw MIME message as it would be sent.")
    ] = False,
) -> None:
    """Show the message a user (or a sample recipient) would get; nothing is sent.

    Headers and the text part, decoded; --html adds the HTML part, --raw prints the MIME source."""
    from notify.campaigns import preview as campaign_preview
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
        shown = campaign_preview.preview(session, config, campaign, person, as_sent=True)
    message = shown.message
    typer.echo(message.as_string() if raw else readable(message, html=html))
    if not raw and shown.fallbacks.fields:
        typer.echo("\n" + fallbacks_summary(shown.fallbacks, shown.lacks))
