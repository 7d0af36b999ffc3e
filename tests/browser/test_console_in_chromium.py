"""The console in Debian's Chromium against a `notify web` of the test's own: an admin sets up
their account from the one-time link, schedules, pauses and resumes a campaign through the
confirmations, adds a marketing operator and reads the audit log. Every page is checked with
axe-core (no serious or critical violation) and photographed at desktop and phone width into
``var/screenshots/console/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page

from notify.campaigns import lifecycle
from notify.campaigns.lifecycle import CampaignDraft
from notify.operators import accounts
from notify.people import recipients
from notify.producers.api_keys import KEY_PREFIX
from tests.browser.checks import accessible_and_photographed
from tests.support.services import ROOT, WebProcess
from tests.support.stack import OwnStack, sample_data

pytestmark = pytest.mark.integration

SHOTS = ROOT / "var" / "screenshots" / "console"
PASSWORD = "a long enough password"


def check_and_photograph(page: Page, name: str) -> None:
    accessible_and_photographed(page, name, SHOTS)


def people_and_a_draft(stack: OwnStack, count: int) -> int:
    with stack.sessions.begin() as session:
        for number in range(count):
            recipients.upsert(
                session,
                f"console-{number}",
                email=f"console-{number}@example.com",
                hash_key=stack.settings.hash_key,
            )
        campaign = lifecycle.create(
            session,
            CampaignDraft(name="Dark mode", template="product_update",
                          data=sample_data("product_update")),
            created_by="test",
            max_data_bytes=stack.settings.max_data_bytes,
        )  # fmt: skip
        return campaign.id


def act(page: Page, label: str, expected_question: str, status: str) -> None:
    page.get_by_role("link", name=f"{label}…").click()
    assert expected_question in page.locator("#question").inner_text()
    page.get_by_role("button", name=f"Yes, {label.lower()}").click()
    page.wait_for_url("**/console/campaigns/*")
    assert page.locator("#status").inner_text() == status


def test_an_admin_sets_up_runs_a_campaign_through_its_confirmations_and_adds_an_operator(
    own_stack: OwnStack, own_web: WebProcess, tab: BrowserContext
) -> None:
    with own_stack.sessions.begin() as session:
        link = accounts.create(session, "admin@example.com", "admin")
    campaign_id = people_and_a_draft(own_stack, 3)
    page = tab.new_page()

    page.goto(f"{own_web.base_url}/console/campaigns")
    assert "/console/login" in page.url  # nobody is signed in yet
    check_and_photograph(page, "login")

    page.goto(f"{own_web.base_url}/console/setup/{link.token}")
    check_and_photograph(page, "setup")
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Save and sign in").click()
    page.wait_for_url("**/console/campaigns")
    check_and_photograph(page, "campaigns")

    page.get_by_role("link", name="Dark mode").click()
    assert page.locator("#status").inner_text() == "draft"
    check_and_photograph(page, "campaign")
    page.get_by_role("link", name="Schedule…").click()
    check_and_photograph(page, "confirm")
    page.go_back()
    act(page, "Schedule", "reaches 3 people", "scheduled")
    act(page, "Pause", "messages wait until you resume", "paused")
    act(page, "Resume", "still to send", "scheduled")

    page.get_by_role("link", name="Operators").click()
    page.get_by_label("Email address").fill("marketing@example.com")
    page.get_by_label("Role").select_option("marketing")
    page.get_by_role("button", name="Create and show the setup link").click()
    setup_url = page.locator("#setup-url").inner_text()
    assert setup_url.startswith(f"{own_stack.settings.public_url}/console/setup/")
    check_and_photograph(page, "operators")

    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Who the key is for").fill("billing")
    page.get_by_label("notifications:send").check()
    page.get_by_role("button", name="Make the key and show it once").click()
    assert page.locator("#new-key").inner_text().startswith(KEY_PREFIX)
    check_and_photograph(page, "keys")

    for path, name in (
        ("/console/setup/not-a-link", "setup-invalid"),
        ("/console/campaigns/999999", "missing"),
    ):
        page.goto(f"{own_web.base_url}{path}")
        check_and_photograph(page, name)
    page.goto(f"{own_web.base_url}/console/campaigns")
    page.get_by_role("link", name="Audit log").click()
    log = page.locator("tbody").inner_text()
    for action in ("campaign.schedule", "campaign.pause", "campaign.resume", "operator.create"):
        assert action in log
    assert f"campaign:{campaign_id}" in log
    check_and_photograph(page, "audit")
    page.get_by_role("link", name="Stats").click()
    page.wait_for_url("**/console/stats")  # a click does not wait for the page it opens
    assert page.get_by_role("heading", name="Unsubscribes, by route").count() == 1
    check_and_photograph(page, "stats")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/login")
    page.goto(f"{own_web.base_url}/console/campaigns")
    assert "/console/login" in page.url
    assert Path(SHOTS / "campaign-phone.png").stat().st_size > 0


def test_a_marketer_imports_people_writes_a_markdown_campaign_and_previews_it_for_two(
    own_stack: OwnStack, own_web: WebProcess, tab: BrowserContext, tmp_path: Path
) -> None:
    with own_stack.sessions.begin() as session:
        link = accounts.create(session, "marketing@example.com", "marketing")
    page = tab.new_page()
    page.goto(f"{own_web.base_url}/console/setup/{link.token}")
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Save and sign in").click()
    page.wait_for_url("**/console/campaigns")
    assert page.get_by_role("link", name="Operators").count() == 0  # marketing, not admin
    page.goto(f"{own_web.base_url}/console/operators")
    assert page.get_by_role("heading", name="Admins only").count() == 1
    check_and_photograph(page, "denied")
    page.goto(f"{own_web.base_url}/console/campaigns")

    people = tmp_path / "people.csv"
    people.write_text(
        "user_id,email,first_name,plan\n"
        "mk-ada,mk-ada@example.com,Ada,pro\n"
        "mk-bad,not-an-address,Bad,\n"
        "mk-grace,mk-grace@example.com,Grace,free\n",
        encoding="utf-8",
    )
    page.get_by_role("link", name="Audience").click()
    page.get_by_label("File").set_input_files(str(people))
    page.get_by_role("button", name="Check the file").click()
    assert (
        "2 people can be imported; 1 lines have problems"
        in page.locator("#check-summary").inner_text()
    )
    assert page.locator("#check-errors tbody td").first.inner_text() == "3"  # the bad line
    check_and_photograph(page, "audience-check")
    page.get_by_role("button", name="Import 2 people").click()
    assert "Imported 2 people" in page.locator("#import-done").inner_text()

    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    check_and_photograph(page, "new-campaign")
    page.get_by_label("Name (for you").fill("Winter news")
    page.get_by_label("Subject", exact=True).fill(
        "{{ recipient.first_name | default('Hello', true) }}, it snows"
    )
    page.get_by_label("Preheader (the preview line").fill("Dark mode and more")
    page.get_by_label("Body, in Markdown").fill(
        "# Winter news\n\nHello {{ recipient.first_name | default('there', true) }},\n\n"
        "**Dark mode** is here. [Try it](https://example.com/dark)\n"
    )
    page.get_by_role("button", name="Save the draft and preview it").click()
    page.wait_for_url("**/preview")
    for user_id, first_name in (("mk-ada", "Ada"), ("mk-grace", "Grace")):
        page.get_by_label("Show it as a recipient").fill(user_id)
        page.get_by_role("button", name="Show").click()
        page.wait_for_url(f"**user_id={user_id}*")
        assert f"Hello {first_name}," in page.locator("#text-part").inner_text()
        frame = page.frame_locator("iframe.desktop")
        assert frame.locator("h1").inner_text() == "Winter news"
        assert f"Hello {first_name}," in frame.locator("body").inner_text()
        assert page.locator("#lacking-first_name").inner_text().startswith("0 of 2")
    check_and_photograph(page, "preview")
