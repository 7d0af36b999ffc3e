"""The marketer's whole path on the shared stack, in Debian's Chromium: sign in, write a
Markdown campaign, send a test to oneself and read it at the SMTP server, schedule it, and
watch its page refresh itself until it reads "completed", with each person's own greeting
received once at the SMTP server (a real worker and beat on PostgreSQL and Redis)."""

from __future__ import annotations

import email
import uuid
from email import policy

import pytest
from playwright.sync_api import BrowserContext

from notify.people import recipients
from tests.browser.checks import sign_in
from tests.browser.test_console_in_chromium import PASSWORD, check_and_photograph
from tests.support.services import WebProcess, wait_until
from tests.support.stack import Stack, operator_with_password

pytestmark = pytest.mark.integration


def greeting(content: bytes) -> str:
    parsed = email.message_from_bytes(content, policy=policy.default)
    text = parsed.get_body(("plain",))
    assert text is not None
    return str(text.get_content()).splitlines()[0]


def test_a_marketer_tests_schedules_and_watches_a_campaign_to_completed(
    stack: Stack, web_server: WebProcess, tab: BrowserContext
) -> None:
    tag = f"en-c{uuid.uuid4().hex[:7]}"
    names = {f"{tag}-{n}": name for n, name in enumerate(("Ada", "Grace", "Zoë"))}
    operator_address = f"marketer-{tag}@example.com"
    with stack.sessions.begin() as session:
        for user_id, first_name in names.items():
            recipients.upsert(
                session, user_id, email=f"{user_id}@example.com",
                hash_key=stack.settings.hash_key, locale=tag, first_name=first_name,
            )  # fmt: skip
        operator_with_password(session, operator_address, "marketing", PASSWORD)

    page = tab.new_page()
    sign_in(page, web_server.base_url, operator_address, PASSWORD)

    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name (for you").fill(f"Snow {tag}")
    page.get_by_label("Subject", exact=True).fill("Snow news")
    page.get_by_label("Body, in Markdown").fill(
        "Hello {{ recipient.first_name | default('there', true) }},\n\nIt snows."
    )
    page.get_by_label("Only people with these locales").fill(tag)
    page.get_by_role("button", name="Save the draft and preview it").click()
    page.wait_for_url("**/preview")

    page.get_by_role("button", name="Send a test to me").click()
    assert "A test went to" in page.locator("#test-sent").inner_text()
    tests = wait_until(lambda: stack.smtp.handler.messages_to(operator_address), 10, "the test")
    assert greeting(tests[0].content) in {f"Hello {name}," for name in names.values()}

    page.get_by_role("link", name="To the campaign").click()
    page.get_by_role("link", name="Schedule…").click()
    assert "reaches 3 people" in page.locator("#question").inner_text()
    page.get_by_role("button", name="Yes, schedule").click()
    page.locator("#status", has_text="completed").wait_for(timeout=90_000)  # it refreshes itself
    assert page.locator("#count-sent").inner_text() == "3"
    check_and_photograph(page, "campaign-completed")

    for user_id, first_name in names.items():
        received = stack.smtp.handler.messages_to(f"{user_id}@example.com")
        assert len(received) == 1, user_id
        assert greeting(received[0].content) == f"Hello {first_name},"
