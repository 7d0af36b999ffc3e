"""The first ten minutes in a real browser (Debian's Chromium driven by Playwright), against a
`notify web` of the test's own (``own_web``): an unsubscribe walked from the mailbox page into a
new tab, the email's HTML kept without scripts, the preference page's boxes measured, and one
stylesheet on every page. Shares nothing with other test runs."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page
from sqlalchemy import select

from notify.delivery.transport import MailboxTransport
from notify.message import links
from notify.message.composing import preview_message
from notify.message.templates import get_template
from notify.models import ConsentEvent, Recipient
from notify.people import preferences, recipients
from tests.support.services import WebProcess
from tests.support.stack import OwnStack

pytestmark = pytest.mark.integration
LINK_BLUE = "rgb(11, 87, 208)"  # a { color: #0b57d0 } in templates/pages/pages.css
STYLESHEETS = """() => [...document.styleSheets]
    .map(sheet => [...sheet.cssRules].map(rule => rule.cssText).join("\\n"))"""


def new_person(own_stack: OwnStack, user_id: str) -> str:
    """A recipient with an address; their public id."""
    with own_stack.sessions.begin() as session:
        person, _ = recipients.upsert(
            session, user_id, email=f"{user_id}@example.com", hash_key=own_stack.settings.hash_key
        )
        return str(person.public_id)


def capture(own_stack: OwnStack, template: str, user_id: str) -> Path:
    """The email ``template`` (with its sample data) to a new person, written to the mailbox
    folder as the worker writes it; the file's path."""
    public_id = new_person(own_stack, user_id)
    message = preview_message(
        own_stack.settings,
        template=template,
        data=dict(get_template(template).sample),
        email=f"{user_id}@example.com",
        recipient_public_id=public_id,
    )
    folder = own_stack.settings.smtp.mailbox
    MailboxTransport(folder).send(message, envelope_from="x@example.com", envelope_to="y")
    return folder / f"{str(message['Message-ID']).strip('<>')}.eml"


def product_updates(own_stack: OwnStack, user_id: str) -> bool:
    with own_stack.sessions() as session:
        recipient_id = session.scalar(select(Recipient.id).where(Recipient.user_id == user_id))
        assert recipient_id is not None
        defaults = own_stack.settings.default_subscriptions
        return preferences.subscribed_to(session, recipient_id, "product_updates", defaults)


def consent_sources(own_stack: OwnStack) -> list[str]:
    with own_stack.sessions() as session:
        return list(session.scalars(select(ConsentEvent.source).order_by(ConsentEvent.id)))


def blocked(messages: list[ConsoleMessage]) -> list[str]:
    return [m.text for m in messages if "Blocked" in m.text or "sandboxed" in m.text]


def test_an_unsubscribe_link_in_a_captured_email_opens_a_working_page_in_a_new_tab(
    own_stack: OwnStack, own_web: WebProcess, tab: BrowserContext
) -> None:
    capture(own_stack, "product_update", "u-mailbox")
    console: list[ConsoleMessage] = []

    def heard(message: ConsoleMessage) -> None:
        console.append(message)

    tab.on("console", heard)
    page = tab.new_page()
    page.goto(f"{own_web.base_url}/dev/mailbox", wait_until="networkidle")
    page.get_by_role("link", name="Dark mode is here").click()
    page.wait_for_load_state("networkidle")

    frame = page.frame_locator("iframe[title='HTML part']")
    with tab.expect_page() as opened:
        frame.get_by_role("link", name="Unsubscribe", exact=True).click()
    unsubscribe = opened.value
    unsubscribe.wait_for_load_state("networkidle")
    assert unsubscribe.url.startswith(f"{own_web.base_url}/u/")
    assert page.url.endswith(".eml")  # the mailbox stays where it was

    unsubscribe.get_by_role("button", name="Unsubscribe from product updates").click()
    unsubscribe.wait_for_load_state("networkidle")
    assert "You are unsubscribed" in unsubscribe.content()
    assert not product_updates(own_stack, "u-mailbox")
    assert consent_sources(own_stack) == ["page"]
    assert blocked(console) == []


def test_links_in_the_text_part_open_in_a_new_tab(
    own_stack: OwnStack, own_web: WebProcess, tab: BrowserContext
) -> None:
    path = capture(own_stack, "product_update", "u-text")
    page = tab.new_page()
    page.goto(f"{own_web.base_url}/dev/mailbox/{path.name}", wait_until="networkidle")
    text_links = page.locator("pre a")
    assert text_links.count() == 3  # the call to action, unsubscribe, preferences
    with tab.expect_page() as opened:
        page.locator("pre a", has_text="/preferences/").click()
    preferences_page = opened.value
    preferences_page.wait_for_load_state("networkidle")
    assert "Your email preferences" in preferences_page.content()


def test_the_emails_html_is_shown_sandboxed_and_runs_no_script(
    own_stack: OwnStack, own_web: WebProcess, tab: BrowserContext
) -> None:
    message = EmailMessage()
    message["Subject"] = "Scripted"
    message["To"] = "dev@example.com"
    message["Message-ID"] = "<scripted@notify.localhost>"
    message.set_content("plain")
    message.add_alternative(
        "<html><head><title>x</title></head><body><p id='p'>static</p>"
        "<script>document.getElementById('p').textContent = 'script ran'</script>"
        "<img src='data:,' onerror=\"document.getElementById('p').textContent = 'handler ran'\">"
        "</body></html>",
        subtype="html",
    )
    MailboxTransport(own_stack.settings.smtp.mailbox).send(
        message, envelope_from="x@example.com", envelope_to="y"
    )
    page = tab.new_page()
    page.goto(f"{own_web.base_url}/dev/mailbox/scripted@notify.localhost.eml")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    iframe = page.locator("iframe[title='HTML part']")
    sandbox = set((iframe.get_attribute("sandbox") or "").split())
    assert sandbox == {"allow-popups", "allow-popups-to-escape-sandbox"}
    frame = page.frame_locator("iframe[title='HTML part']")
    assert frame.locator("#p").text_content() == "static"
    assert frame.locator("base").get_attribute("target") == "_blank"


def boxes(page: Page) -> list[dict[str, Any]]:
    """Each category row's checkbox box and where its label text starts."""
    rows = page.locator("label.category[data-category]")
    found = []
    for index in range(rows.count()):
        row = rows.nth(index)
        box = row.locator("input[type=checkbox]").bounding_box()
        text = row.locator("strong").bounding_box()
        assert box is not None and text is not None
        found.append(
            {
                "category": row.get_attribute("data-category"),
                "box": (round(box["x"], 1), round(box["width"], 1), round(box["height"], 1)),
                "text_x": round(text["x"], 1),
                "note": (row.locator(".note").text_content() or "").strip(),
            }
        )
    return found


@pytest.mark.parametrize("width", [1280, 360])
def test_every_checkbox_on_the_preference_page_has_the_same_box_and_a_description(
    own_stack: OwnStack, own_web: WebProcess, tab: BrowserContext, width: int
) -> None:
    public_id = new_person(own_stack, "u-boxes")
    page = tab.new_page()
    page.set_viewport_size({"width": width, "height": 800})
    url = links.preferences_url(own_stack.settings, public_id)
    page.goto(url, wait_until="networkidle")
    rows = boxes(page)
    assert [row["category"] for row in rows] == ["security", "admin", "product_updates"]
    assert {row["box"] for row in rows} == {rows[0]["box"]}, rows
    assert rows[0]["box"][1:] == (22.0, 22.0)
    assert {row["text_x"] for row in rows} == {rows[0]["text_x"]}, rows
    assert all(row["note"] for row in rows), rows
    quiet = page.locator("fieldset.quiet-hours input[type=checkbox]").bounding_box()
    assert quiet is not None  # the quiet hours' box is drawn as the categories' are
    assert (round(quiet["x"], 1), round(quiet["width"], 1), round(quiet["height"], 1)) == rows[0][
        "box"
    ]


def test_every_page_has_the_same_stylesheet_and_links_are_the_same_blue(
    own_stack: OwnStack, own_web: WebProcess, tab: BrowserContext
) -> None:
    path = capture(own_stack, "product_update", "u-styles")
    with own_stack.sessions() as session:
        public_id = str(
            session.scalar(select(Recipient.public_id).where(Recipient.user_id == "u-styles"))
        )
    base = own_web.base_url
    unsubscribe = links.unsubscribe_url(own_stack.settings, public_id, "product_updates")
    page = tab.new_page()
    sheets: dict[str, list[str]] = {}

    def look(name: str) -> None:
        page.wait_for_load_state("networkidle")
        sheets[name] = page.evaluate(STYLESHEETS)

    for name, url in (
        ("mailbox", f"{base}/dev/mailbox"),
        ("message", f"{base}/dev/mailbox/{path.name}"),
        ("preferences", links.preferences_url(own_stack.settings, public_id)),
        ("request", f"{base}/preferences"),
        ("unsubscribe", unsubscribe),
    ):
        page.goto(url)
        look(name)
    page.get_by_role("button", name="Unsubscribe from product updates").click()
    look("unsubscribed")
    page.goto(unsubscribe)
    look("already unsubscribed")
    assert "You are already unsubscribed" in page.content()
    page.get_by_role("button", name="Subscribe me to product updates again").click()
    look("subscribed again")
    assert "You are subscribed again" in page.content()
    assert product_updates(own_stack, "u-styles")

    response = page.goto(f"{base}/u/not-a-token")
    assert response is not None and response.status == 404
    look("invalid link")
    colour = page.locator("a").first.evaluate("link => getComputedStyle(link).color")
    assert colour == LINK_BLUE

    first = sheets["mailbox"]
    assert len(first) == 1 and "label.category" in first[0]
    assert {name: sheet == first for name, sheet in sheets.items()} == dict.fromkeys(sheets, True)
