"""The campaign commands a marketer runs against `make run`'s SQLite database: create with an
audience, watch (the total in the first frame), preview (readable, raw behind --raw).

No worker: planning and sending are simulated with the domain functions."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from notify.campaigns.lifecycle import start_due
from notify.campaigns.planning import plan_next_page
from notify.cli.app import app
from notify.cli.campaigns import snapshot
from notify.config import Settings, load_settings
from notify.db import SessionFactory, make_session_factory, open_database
from notify.message.templates import get_template
from notify.migrate import upgrade
from notify.models import Campaign, CampaignStatus, Notification, NotificationStatus
from notify.models.base import utcnow

pytestmark = pytest.mark.integration


@pytest.fixture
def dev_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SessionFactory:
    """A migrated SQLite database as `make run` has it, named in the environment the CLI reads."""
    url = f"sqlite:///{tmp_path / 'notify.sqlite'}"
    upgrade(url)
    monkeypatch.setenv("NOTIFY_DATABASE_URL", url)
    monkeypatch.setenv("NOTIFY_BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}")
    return make_session_factory(open_database(Settings(database_url=url)))


def run(*arguments: str) -> str:
    result = CliRunner().invoke(app, list(arguments), env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def make_campaign(tmp_path: Path) -> int:
    users = tmp_path / "users.csv"
    users.write_text(
        "user_id,email,locale,timezone\n"
        "u1,ada@example.com,en,Europe/London\n"
        "u2,grace@example.com,fr,Europe/Paris\n"
        "u3,linus@example.com,en,UTC\n"
    )
    assert "imported 3" in run("users", "import", str(users))
    data = json.dumps(dict(get_template("product_update").sample))
    output = run(
        "campaigns",
        "create",
        "--name",
        "Dark mode",
        "--template",
        "product_update",
        "--data",
        data,
        "--user-id",
        "u1",
        "--user-id",
        "u2",
    )
    return int(output.strip())


def test_create_keeps_the_user_ids_and_watch_knows_the_total_before_planning(
    dev_database: SessionFactory, tmp_path: Path
) -> None:
    campaign_id = make_campaign(tmp_path)
    defaults = load_settings().default_subscriptions
    with dev_database() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.audience["user_ids"] == ["u1", "u2"]
        before = snapshot(session, campaign, defaults)
    assert (before.total, before.done) == (2, 0)

    assert "is scheduled" in run("campaigns", "schedule", str(campaign_id))
    now = utcnow() + timedelta(seconds=1)
    with dev_database.begin() as session:
        assert start_due(session, now=now) == [campaign_id]
        planned = plan_next_page(
            session,
            campaign_id,
            page_size=1,
            defaults=defaults,
            default_timezone="UTC",
            now=now,
        )
        assert planned is not None and planned.size == 1
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        half = snapshot(session, campaign, defaults)
    assert half.total == 2  # one planned, one still to plan
    assert half.counts["pending"] == 1

    with dev_database.begin() as session:
        while plan_next_page(
            session,
            campaign_id,
            page_size=1,
            defaults=defaults,
            default_timezone="UTC",
            now=now,
        ):
            pass
        session.execute(
            update(Notification)
            .where(Notification.campaign_id == campaign_id)
            .values(status=NotificationStatus.SENT, sent_at=utcnow())
        )
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(status=CampaignStatus.COMPLETED)
        )

    shown = run("campaigns", "watch", str(campaign_id), "--interval", "0.2")
    assert "2/2 100%" in shown
    assert "completed" in shown
    assert "None" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 80


def test_preview_is_readable_and_raw_only_on_request(
    dev_database: SessionFactory, tmp_path: Path
) -> None:
    campaign_id = make_campaign(tmp_path)
    readable = run("campaigns", "preview", str(campaign_id), "--user-id", "u2")
    head, _, body = readable.partition("\n\n")
    assert "Subject:" in head and "Dark mode is here" in head
    assert "To:" in head and "grace@example.com" in head
    assert "Content-Transfer-Encoding" not in readable
    assert "You asked, we listened" in body
    raw = run("campaigns", "preview", str(campaign_id), "--raw")
    assert "MIME-Version: 1.0" in raw
    assert "Content-Type: multipart/alternative" in raw


def test_watch_and_preview_of_an_unknown_campaign_are_one_line(
    dev_database: SessionFactory,
) -> None:
    for command in ("watch", "preview"):
        result = CliRunner().invoke(app, ["campaigns", command, "999"])
        assert result.exit_code == 2
        assert result.output.strip() == "notify: no campaign 999"
