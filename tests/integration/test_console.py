"""The console's server side, in process on a stack of the test's own (SQLite, SQL broker):
roles enforced on every route, CSRF on every form, sign-in throttled, sessions that end, and
every campaign action audited."""

from __future__ import annotations

import email
import html
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy import select, update
from starlette.routing import Route

from notify.campaigns import changes, lifecycle
from notify.campaigns.lifecycle import CampaignDraft
from notify.message.tokens import read_unsubscribe_token
from notify.models import AuditEntry, Campaign, Notification, Recipient
from notify.operators import accounts
from notify.people import recipients
from notify.web.app import create_app
from notify.web.console import audience as console_audience
from notify.web.console import authoring as console_authoring
from notify.web.console import routes as console_routes
from notify.web.console import stats as console_stats
from tests.support.services import wait_until
from tests.support.stack import OwnStack, Stack, operator_with_password, sample_data

PASSWORD = "a long enough password"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    stack: OwnStack
    app: FastAPI
    campaign_id: int

    def client(self, role: str | None) -> TestClient:
        """A fresh browser: anonymous, or signed in as an operator with ``role``."""
        client = TestClient(self.app, follow_redirects=False)
        client.__enter__()
        if role is not None:
            email = f"{role}-{time.monotonic_ns()}@example.com"
            with self.stack.sessions.begin() as session:
                operator_with_password(session, email, role, PASSWORD)
            sign_in(client, email, PASSWORD)
        return client


def csrf_of(client: TestClient, path: str) -> str:
    found = CSRF.search(client.get(path).text)
    assert found is not None, path
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str) -> None:
    token = csrf_of(client, "/console/login")
    answer = client.post(
        "/console/login", data={"email": email, "password": password, "csrf": token}
    )
    assert answer.status_code == 303, answer.text


def draft(stack: OwnStack) -> int:
    with stack.sessions.begin() as session:
        campaign = lifecycle.create(
            session,
            CampaignDraft(
                name="console", template="product_update", data=sample_data("product_update")
            ),
            created_by="test",
            max_data_bytes=stack.settings.max_data_bytes,
        )
        return campaign.id


@pytest.fixture
def console(own_stack: OwnStack) -> Iterator[Console]:
    app = create_app(own_stack.settings)
    with TestClient(app, follow_redirects=False):
        yield Console(own_stack, app, draft(own_stack))


# Every console route, with a concrete path and who may use it ("admin", "operator" for any
# signed-in role, or "anyone" for the pages that sign people in).
ROUTES = {
    ("GET", "/console"): "anyone",
    ("GET", "/console/login"): "anyone",
    ("POST", "/console/login"): "anyone",
    ("POST", "/console/logout"): "operator",
    ("GET", "/console/setup/{token}"): "anyone",
    ("POST", "/console/setup/{token}"): "anyone",
    ("GET", "/console/campaigns"): "operator",
    ("GET", "/console/campaigns/new"): "operator",
    ("POST", "/console/campaigns/new"): "operator",
    ("GET", "/console/campaigns/{campaign_id}/preview"): "operator",
    ("GET", "/console/campaigns/{campaign_id}/edit"): "operator",
    ("POST", "/console/campaigns/{campaign_id}/edit"): "operator",
    ("POST", "/console/campaigns/{campaign_id}/test"): "operator",
    ("GET", "/console/campaigns/{campaign_id}"): "operator",
    ("GET", "/console/campaigns/{campaign_id}/{action}"): "operator",
    ("POST", "/console/campaigns/{campaign_id}/{action}"): "operator",
    ("GET", "/console/audience"): "operator",
    ("POST", "/console/audience/check"): "operator",
    ("POST", "/console/audience/import"): "operator",
    ("GET", "/console/stats"): "operator",
    ("GET", "/console/operators"): "admin",
    ("POST", "/console/operators"): "admin",
    ("GET", "/console/audit"): "admin",
    ("GET", "/console/keys"): "admin",
    ("POST", "/console/keys"): "admin",
    ("POST", "/console/keys/{key_id}/revoke"): "admin",
}


def test_the_matrix_lists_every_console_route() -> None:
    routes = {
        (method, route.path)
        for router in (
            console_routes.router,
            console_authoring.router,
            console_audience.router,
            console_stats.router,
        )
        for route in router.routes
        if isinstance(route, Route)
        for method in (route.methods or ()) - {"HEAD"}
    }
    assert routes == set(ROUTES)


def concrete(path: str, campaign_id: int) -> str:
    return path.format(token="not-a-token", campaign_id=campaign_id, action="pause", key_id=999)


@pytest.mark.parametrize("role", [None, "marketing", "admin"])
def test_roles_are_enforced_on_every_console_route(console: Console, role: str | None) -> None:
    client = console.client(role)
    last = ("POST", "/console/logout")  # it ends the session the other routes need
    for (method, path), who in sorted(ROUTES.items(), key=lambda item: item[0] == last):
        url = concrete(path, console.campaign_id)
        if method == "GET":
            answer = client.get(url)
        else:
            token = csrf_of(client, "/console/campaigns") if role else ""
            answer = client.post(url, data={"csrf": token})
        if who != "anyone" and role is None:
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"].startswith("/console/login")
        elif who == "admin" and role == "marketing":
            assert answer.status_code == 403, (method, path)
        elif who == "anyone":  # sign-in and setup: their forms' own tokens are tested below
            assert answer.status_code < 500, (method, path)
        else:
            assert answer.status_code < 500 and answer.status_code not in (401, 403), (
                method,
                path,
                answer.status_code,
            )


def test_every_form_refuses_a_post_without_its_csrf_token(console: Console) -> None:
    client = console.client("admin")
    for method, path in ROUTES:
        if method != "POST":
            continue
        url = concrete(path, console.campaign_id)
        for token in ("", "forged-token", csrf_of(console.client("admin"), "/console/campaigns")):
            answer = client.post(url, data={"csrf": token, "email": "x@example.com"})
            assert answer.status_code == 403, (path, token)
    with console.stack.sessions() as session:
        assert session.get(Campaign, console.campaign_id).status.value == "draft"  # type: ignore[union-attr]


def test_pause_and_resume_need_a_confirmation_that_counts_people_and_are_audited(
    console: Console,
) -> None:
    client = console.client("marketing")
    schedule = client.get(f"/console/campaigns/{console.campaign_id}/schedule")
    assert schedule.status_code == 200 and "reaches 0 people" in schedule.text
    for action, status in (("schedule", "scheduled"), ("pause", "paused"), ("resume", "scheduled")):
        token = csrf_of(client, f"/console/campaigns/{console.campaign_id}/{action}")
        done = client.post(
            f"/console/campaigns/{console.campaign_id}/{action}", data={"csrf": token}
        )
        assert done.status_code == 303
        page = client.get(f"/console/campaigns/{console.campaign_id}").text
        assert f'id="status">{status}<' in page
    refused = client.post(
        f"/console/campaigns/{console.campaign_id}/resume",
        data={"csrf": csrf_of(client, "/console/campaigns")},
    )
    assert refused.status_code == 409 and "could not be done" in refused.text
    with console.stack.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target == f"campaign:{console.campaign_id}")
        ).all()
    assert actions == ["campaign.schedule", "campaign.pause", "campaign.resume"]


def test_sign_in_is_throttled_and_a_wrong_password_says_nothing_more(console: Console) -> None:
    client = console.client(None)
    address = f"nobody-{time.monotonic_ns()}@example.com"
    answers = []
    for _ in range(console.stack.settings.console_login_attempts_per_minute + 1):
        token = csrf_of(client, "/console/login")
        answers.append(
            client.post(
                "/console/login", data={"email": address, "password": "wrong", "csrf": token}
            )
        )
    assert [answer.status_code for answer in answers[:-1]] == [401] * (len(answers) - 1)
    assert "do not match an operator" in answers[0].text
    assert answers[-1].status_code == 429 and answers[-1].headers["Retry-After"] == "60"


def test_sessions_end_on_sign_out_on_a_new_password_and_when_they_expire(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = console.client("marketing")
    kept = dict(client.cookies)
    assert client.get("/console/campaigns").status_code == 200
    client.post("/console/logout", data={"csrf": csrf_of(client, "/console/campaigns")})
    replay = TestClient(console.app, follow_redirects=False, cookies=kept)
    assert replay.get("/console/campaigns").status_code == 303  # the old cookie is dead

    later = console.client("marketing")
    assert later.get("/console/campaigns").status_code == 200
    lifetime = console.stack.settings.console_session_seconds
    now = time.time
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _: int(now()) + lifetime + 5)
    assert later.get("/console/campaigns").status_code == 303


def test_a_setup_link_works_once(console: Console) -> None:
    with console.stack.sessions.begin() as session:
        link = accounts.create(session, f"new-{time.monotonic_ns()}@example.com", "marketing")
    client = console.client(None)
    path = f"/console/setup/{link.token}"
    short = client.post(
        path, data={"password": "short", "again": "short", "csrf": csrf_of(client, path)}
    )
    assert short.status_code == 400 and "at least 12" in short.text
    done = client.post(
        path, data={"password": PASSWORD, "again": PASSWORD, "csrf": csrf_of(client, path)}
    )
    assert done.status_code == 303
    assert client.get("/console/campaigns").status_code == 200
    assert client.get(path).status_code == 404


def test_a_markdown_draft_is_written_checked_and_previewed_as_each_person(
    console: Console,
) -> None:
    with console.stack.sessions.begin() as session:
        for user_id, first_name in (("pv-ada", "Ada"), ("pv-anon", None)):
            recipients.upsert(
                session,
                user_id,
                email=f"{user_id}@example.com",
                hash_key=console.stack.settings.hash_key,
                first_name=first_name,
            )
    client = console.client("marketing")
    form = {
        "csrf": csrf_of(client, "/console/campaigns/new"),
        "name": "Winter news",
        "subject": "News for {{ recipient.first_name | default('you', true) }}",
        "preheader": "",
        "body": "Hello {{ recipient.first_name | default('there', true) }}, <script>x</script>",
        "locales": "",
        "user_ids": "",
        "send_at": "",
        "send_at_local": "",
        "rate_limit": "",
    }
    bad = client.post("/console/campaigns/new", data={**form, "body": "{{ oops", "rate_limit": "x"})
    assert bad.status_code == 400 and "Rate: a number" in bad.text
    bad = client.post("/console/campaigns/new", data={**form, "body": "{{ oops"})
    assert bad.status_code == 400 and "Body: is not valid" in bad.text
    bad = client.post("/console/campaigns/new", data={**form, "body": "{{ 1/0 }}"})
    assert bad.status_code == 400 and "Body: cannot be rendered" in bad.text
    for field, value, says in (("name", "a\x00b", "NUL"), ("locales", "de, x y", "Locales:")):
        bad = client.post("/console/campaigns/new", data={**form, field: value})
        assert bad.status_code == 400 and says in bad.text, field
    made = client.post("/console/campaigns/new", data=form)
    assert made.status_code == 303
    preview_path = made.headers["location"]
    ada = client.get(preview_path, params={"user_id": "pv-ada"}).text
    assert "Hello Ada," in ada and "News for Ada" in ada
    assert "pv-ada@example.com" not in ada  # the address is masked
    anon = client.get(preview_path, params={"user_id": "pv-anon"}).text
    assert "Hello there," in anon and "with the fallback for first_name" in anon
    shown = re.search(r'srcdoc="([^"]*)"', anon)
    assert shown is not None
    message_html = html.unescape(shown.group(1))
    assert "Hello there," in message_html and "<script" not in message_html.lower()
    with console.stack.sessions() as session:
        created = session.scalars(
            select(AuditEntry.action).where(AuditEntry.action == "campaign.create")
        ).all()
    assert created == ["campaign.create"]


def test_send_a_test_to_me_reaches_the_operator_at_the_smtp_server_with_dead_links(
    stack: Stack,
) -> None:
    """On the shared stack: the relay is a real SMTP server, whose copy is parsed."""
    app = create_app(stack.settings)
    operator_address = f"op-{time.monotonic_ns()}@example.com"
    with stack.sessions.begin() as session:
        operator_with_password(session, operator_address, "marketing", PASSWORD)
        recipients.upsert(
            session,
            f"tst-{time.monotonic_ns()}",
            email="grace-test@example.com",
            hash_key=stack.settings.hash_key,
            first_name="Grace",
            locale="en-ttest",
        )
        campaign = changes.create(
            session,
            CampaignDraft(
                name="test send",
                template="markdown_update",
                data={
                    "subject": "Hi {{ recipient.first_name }}",
                    "body": "Hello {{ recipient.first_name }}",
                },
                locales=("en-ttest",),
            ),
            max_data_bytes=stack.settings.max_data_bytes,
            actor="test",
        )
        campaign_id = campaign.id
    with TestClient(app, follow_redirects=False) as client:
        sign_in(client, operator_address, PASSWORD)
        preview = client.get(f"/console/campaigns/{campaign_id}/preview").text
        previewed = re.search(r'type="hidden" name="user_id" value="([^"]*)"', preview)
        assert previewed is not None and previewed.group(1).startswith("tst-")
        sent = client.post(
            f"/console/campaigns/{campaign_id}/test",
            data={
                "csrf": csrf_of(client, f"/console/campaigns/{campaign_id}/preview"),
                "user_id": previewed.group(1),
            },
        )
        assert sent.status_code == 303
        assert "A test went to" in client.get(sent.headers["location"]).text
    arrived = wait_until(lambda: stack.smtp.handler.messages_to(operator_address), 10, "the test")
    parsed = email.message_from_bytes(arrived[0].content, policy=policy.default)
    assert parsed["Subject"] == "Hi Grace"
    assert stack.smtp.handler.messages_to("grace-test@example.com") == []
    unsubscribe = str(parsed["List-Unsubscribe"]).strip("<>")
    assert (
        read_unsubscribe_token(
            stack.settings.secret_key_list, unsubscribe.rsplit("/", 1)[-1]
        ).public_id
        == "preview"
    )  # type: ignore[union-attr]


def test_an_upload_is_checked_line_by_line_before_anything_is_imported(console: Console) -> None:
    client = console.client("marketing")
    lines = "user_id,email,first_name,plan\nup-1,up1@example.com,Ada,pro\nup-2,not-an-address,,\n"
    checked = client.post(
        "/console/audience/check",
        data={"csrf": csrf_of(client, "/console/audience")},
        files={"file": ("people.csv", lines.encode(), "text/csv")},
    )
    assert checked.status_code == 200
    assert "1 people can be imported; 1 lines have problems" in checked.text
    assert re.search(r"<td>3</td><td>email: ", checked.text)  # the bad line, by number
    with console.stack.sessions() as session:
        assert session.scalars(select(Recipient).where(Recipient.user_id == "up-1")).first() is None
    confirm = re.search(r'name="text" value="([^"]*)"', checked.text)
    assert confirm is not None
    done = client.post(
        "/console/audience/import",
        data={
            "csrf": csrf_of(client, "/console/audience"),
            "fmt": "csv",
            "text": html.unescape(confirm.group(1)),
        },
    )
    assert done.status_code == 200 and "Imported 1 people; 1 lines were skipped" in done.text
    with console.stack.sessions() as session:
        person = session.scalars(select(Recipient).where(Recipient.user_id == "up-1")).one()
        assert (person.first_name, person.attributes) == ("Ada", {"plan": "pro"})
        logged = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "audience.import")
        ).one()
    assert logged.details == {"imported": 1, "rejected": 1}
    too_big = client.post(
        "/console/audience/check",
        data={"csrf": csrf_of(client, "/console/audience")},
        files={"file": ("big.csv", b"x" * (256 * 1024 + 1), "text/csv")},
    )
    assert too_big.status_code == 413 and "notify users import" in too_big.text
    reach_row = re.search(r"<tr><td>Product updates</td><td>(\d+)</td>", done.text)
    assert reach_row is not None and int(reach_row.group(1)) >= 1


def test_the_stats_page_draws_the_api_figures_and_refuses_a_bad_range(
    console: Console,
) -> None:
    stack = console.stack
    with stack.sessions.begin() as session:
        person = recipients.upsert(
            session, "st-1", email="st1@example.com", hash_key=stack.settings.hash_key
        )[0]
        for status in ("sent", "sent", "failed"):
            session.add(
                Notification(
                    recipient_id=person.id,
                    template="product_update",
                    category="product_updates",
                    data={},
                    status=status,
                )
            )
    client = console.client("marketing")
    page = client.get("/console/stats")
    assert page.status_code == 200
    api = TestClient(console.app).get("/v1/stats", headers=stack.auth).json()
    today = next(row for row in api["days"] if row["category"] == "product_updates")
    assert (today["sent"], today["failed"]) == (2, 1)
    row = re.search(
        r"<tr><td>(\d{4}-\d\d-\d\d)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>", page.text
    )
    assert row is not None and row.group(1) == today["day"]
    assert (int(row.group(2)), int(row.group(4))) == (today["sent"], today["failed"])
    assert page.text.count('<rect class="sent"') == 1 and '<rect class="failed"' in page.text
    bad = client.get("/console/stats", params={"from": "2026-12-01", "to": "2026-01-01"})
    assert bad.status_code == 400 and "from:" in bad.text


def test_a_markdown_draft_is_edited_until_it_is_scheduled(console: Console) -> None:
    client = console.client("marketing")
    form = {
        "name": "Edit me",
        "subject": "Old subject",
        "preheader": "",
        "body": "Old body",
        "locales": "de, fr",
        "user_ids": "u-1\nu-2 u-1",
        "attributes": "plan = pro\n",
        "send_at": "2026-12-01T10:00+01:00",
        "send_at_local": "",
        "rate_limit": "5",
    }
    made = client.post(
        "/console/campaigns/new", data={**form, "csrf": csrf_of(client, "/console/campaigns/new")}
    )
    assert made.status_code == 303
    campaign_id = int(made.headers["location"].split("/")[3])
    edit = f"/console/campaigns/{campaign_id}/edit"
    shown = client.get(edit).text
    assert "Old body" in shown and "u-1\nu-2</textarea>" in shown and "2026-12-01T09:00" in shown
    assert "plan=pro</textarea>" in shown
    bad = client.post(edit, data={**form, "attributes": "plan", "csrf": csrf_of(client, edit)})
    assert bad.status_code == 400 and "write each as key=value" in bad.text
    both = client.post(
        edit, data={**form, "send_at_local": "2026-12-01T10:00", "csrf": csrf_of(client, edit)}
    )
    assert both.status_code == 400 and "give send_at or send_at_local, not both" in both.text
    saved = client.post(
        edit, data={**form, "subject": "New subject", "csrf": csrf_of(client, edit)}
    )
    assert saved.status_code == 303
    with console.stack.sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.data["subject"] == "New subject"
        assert campaign.audience == {
            "locales": ["de", "fr"],
            "user_ids": ["u-1", "u-2"],
            "attributes": {"plan": "pro"},
        }
        assert campaign.rate_limit == 5
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target == f"campaign:{campaign_id}")
        ).all()
    assert actions == ["campaign.create", "campaign.edit"]
    schedule = f"/console/campaigns/{campaign_id}/schedule"
    client.post(schedule, data={"csrf": csrf_of(client, schedule)})
    assert client.get(edit).status_code == 409
    late = client.post(edit, data={**form, "csrf": csrf_of(client, "/console/campaigns")})
    assert late.status_code == 409 and "only a draft can be edited" in late.text


def test_the_command_line_creates_resets_and_disables_operators_and_a_disabled_one_is_out(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from notify.cli.app import app as cli

    for name, value in console.stack.env.items():
        if name.startswith("NOTIFY_"):
            monkeypatch.setenv(name, value)
    runner = CliRunner()
    create = ["operators", "create", "--role", "admin", "--email"]
    made = runner.invoke(cli, [*create, "cli@example.com"])
    assert made.exit_code == 0 and "/console/setup/" in made.output
    again = runner.invoke(cli, [*create, "cli@EXAMPLE.com"])  # the same address
    assert again.exit_code == 2 and "exists already" in again.output
    first_link = made.output.strip().rsplit("/", 1)[-1]
    reset = runner.invoke(cli, ["operators", "reset", "cli@example.com"])
    assert reset.exit_code == 0
    client = TestClient(console.app, follow_redirects=False)
    assert client.get(f"/console/setup/{first_link}").status_code == 404  # replaced
    link = reset.output.strip().rsplit("/", 1)[-1]
    path = f"/console/setup/{link}"
    token = csrf_of(client, path)
    assert (
        client.post(path, data={"password": PASSWORD, "again": PASSWORD, "csrf": token}).status_code
        == 303
    )
    assert client.get("/console/audit").status_code == 200
    out = runner.invoke(cli, ["operators", "disable", "cli@example.com"])
    assert out.exit_code == 0 and "disabled" in out.output
    assert client.get("/console/audit").status_code == 303  # signed out at once
    assert runner.invoke(cli, ["operators", "reset", "cli@example.com"]).exit_code == 2
    with console.stack.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor == "cli").order_by(AuditEntry.id)
        ).all()
    assert actions == ["operator.create", "operator.reset", "operator.disable"]


def test_an_admin_makes_a_key_that_is_shown_once_and_works_then_revokes_it(
    console: Console,
) -> None:
    client = console.client("admin")
    made = client.post(
        "/console/keys",
        data={
            "csrf": csrf_of(client, "/console/keys"),
            "name": "billing",
            "scope": ["notifications:send", "users:read"],
        },
    )
    assert made.status_code == 200
    secret = re.search(r'id="new-key">([^<]+)<', made.text)
    assert secret is not None
    api = TestClient(console.app)
    assert (
        api.get("/v1/templates", headers={"Authorization": f"Bearer {secret.group(1)}"}).status_code
        == 200
    )
    assert secret.group(1) not in client.get("/console/keys").text  # never shown again
    with console.stack.sessions() as session:
        key_id = session.scalars(
            select(AuditEntry.target).where(AuditEntry.action == "key.create")
        ).one()
    number = int(key_id.split(":")[1])
    revoke = f"/console/keys/{number}/revoke"
    done = client.post(revoke, data={"csrf": csrf_of(client, "/console/keys")})
    assert done.status_code == 303
    assert "revoked" in client.get("/console/keys").text
    none = client.post(
        "/console/keys", data={"csrf": csrf_of(client, "/console/keys"), "name": "x"}
    )
    assert none.status_code == 400 and "at least one scope" in none.text
    with console.stack.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target == key_id)
        ).all()
    assert actions == ["key.create", "key.revoke"]


def test_the_campaign_page_says_why_messages_were_suppressed(console: Console) -> None:
    with console.stack.sessions.begin() as session:
        for number, reason in enumerate(("unsubscribed", "unsubscribed", "bounced")):
            person = recipients.upsert(
                session,
                f"sp-{number}",
                email=f"sp{number}@example.com",
                hash_key=console.stack.settings.hash_key,
            )[0]
            session.add(
                Notification(
                    recipient_id=person.id,
                    template="product_update",
                    category="product_updates",
                    data={},
                    campaign_id=console.campaign_id,
                    status="suppressed",
                    reason=reason,
                )
            )
    page = console.client("marketing").get(f"/console/campaigns/{console.campaign_id}").text
    assert "Suppressed: bounced 1, unsubscribed 2." in page


def test_a_template_campaign_is_written_and_edited_in_the_console_too(console: Console) -> None:
    client = console.client("marketing")
    variables = {k: v for k, v in sample_data("product_update").items() if k != "first_name"}
    form = {
        "template": "product_update",
        "variables": "[1, 2]",
        "name": "From a template",
        "subject": "",
        "body": "",
    }
    token = csrf_of(client, "/console/campaigns/new")
    bad = client.post("/console/campaigns/new", data={**form, "csrf": token})
    assert bad.status_code == 400 and "a JSON object" in bad.text
    missing = client.post("/console/campaigns/new", data={**form, "variables": "{}", "csrf": token})
    assert missing.status_code == 400 and "is required by template product_update" in missing.text
    made = client.post(
        "/console/campaigns/new", data={**form, "variables": json.dumps(variables), "csrf": token}
    )
    assert made.status_code == 303
    campaign_id = int(made.headers["location"].split("/")[3])
    edit = f"/console/campaigns/{campaign_id}/edit"
    shown = client.get(edit).text
    assert '<option value="product_update" selected>' in shown and "Dark mode is here" in shown
    with console.stack.sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.template == "product_update"
        assert campaign.data == variables


def test_a_draft_is_written_in_several_languages_and_previewed_in_each(console: Console) -> None:
    with console.stack.sessions.begin() as session:
        for user_id, locale in (("lang-de", "de-AT"), ("lang-none", None)):
            recipients.upsert(
                session,
                user_id,
                email=f"{user_id}@example.com",
                hash_key=console.stack.settings.hash_key,
                locale=locale,
            )
    client = console.client("marketing")
    form = {
        "name": "Dark mode everywhere",
        "subject": "Dark mode is here",
        "body": "Hello!",
        "language": "en",
        "subject_de": "Der dunkle Modus ist da",
        "body_de": "Hallo!",
        "preheader_de": "",
        "user_ids": "lang-de lang-none",
    }
    token = csrf_of(client, "/console/campaigns/new")
    clash = client.post("/console/campaigns/new", data={**form, "language": "de", "csrf": token})
    assert clash.status_code == 400 and "written in Deutsch" in clash.text
    half = client.post(
        "/console/campaigns/new", data={**form, "subject_fr": "Le mode sombre", "csrf": token}
    )
    assert (
        half.status_code == 400 and "Français body: is required in every translation" in half.text
    )
    made = client.post("/console/campaigns/new", data={**form, "csrf": token})
    assert made.status_code == 303, made.text
    campaign_id = int(made.headers["location"].split("/")[3])
    with console.stack.sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.data == {
            "subject": "Dark mode is here",
            "body": "Hello!",
            "translations": {"de": {"subject": "Der dunkle Modus ist da", "body": "Hallo!"}},
        }
    preview = f"/console/campaigns/{campaign_id}/preview"
    austrian = client.get(preview, params={"user_id": "lang-de"}).text
    assert "Der dunkle Modus ist da" in austrian and "Content-Language</th><td>de" in austrian
    nobody = client.get(preview, params={"user_id": "lang-none"}).text
    assert "Dark mode is here" in nobody and "Content-Language</th><td>en" in nobody
    as_german = client.get(preview, params={"user_id": "lang-none", "language": "de"}).text
    assert "Der dunkle Modus ist da" in as_german and "Hallo!" in as_german
    as_french = client.get(preview, params={"user_id": "lang-de", "language": "fr"}).text
    assert "Dark mode is here" in as_french  # no French text: the campaign's own language
    edit = f"/console/campaigns/{campaign_id}/edit"
    shown = client.get(edit).text
    assert 'name="subject_de" lang="de" maxlength="300" value="Der dunkle Modus ist da"' in shown
    assert '<option value="en" lang="en" selected>' in shown


def test_the_consoles_frame_and_sign_in_follow_the_browsers_language(console: Console) -> None:
    anonymous = console.client(None)
    german = anonymous.get("/console/login", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert german.headers["content-language"] == "de"
    assert '<html lang="de">' in german.text and '<main class="wide" lang="de">' in german.text
    assert "Anmelden" in german.text
    french = anonymous.get("/console/login", headers={"Accept-Language": "fr"})
    assert "Se connecter" in french.text or "Connexion" in french.text
    signed = console.client("marketing")
    campaigns = signed.get("/console/campaigns", headers={"Accept-Language": "de"})
    # The frame is German; the console's own pages are in English, and say so.
    assert '<html lang="de">' in campaigns.text and ">Kampagnen</a>" in campaigns.text
    assert '<main class="wide" lang="en">' in campaigns.text


def test_a_persons_page_shows_everything_but_an_address_no_data_key_decrypts(
    console: Console,
) -> None:
    from notify.web.console.people import UNREADABLE_ADDRESS
    from tests.domain.people import person, under_another_key

    user_id = f"lost-key-{time.monotonic_ns()}"
    with console.stack.sessions.begin() as session:
        person(session, user_id)
        session.execute(
            update(Recipient)
            .where(Recipient.user_id == user_id)
            .values(email=under_another_key(f"{user_id}@example.com"))
        )
    page = console.client("marketing").get(f"/console/people?user_id={user_id}")
    assert page.status_code == 200, page.text
    assert html.escape(UNREADABLE_ADDRESS) in page.text
    assert "Security alerts" in page.text and f"{user_id}@example.com" not in page.text
