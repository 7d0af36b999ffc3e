"""The public pages in a real browser: Debian's Chromium driven by Playwright, JavaScript on.

A link scanner is a browser that loads the page, runs its scripts and waits; only a person
pressing the button may change anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page
from sqlalchemy import delete, select

from notify.message.links import preferences_url, unsubscribe_url
from notify.models import Recipient, ScannerHold
from notify.people.scanner_guard import source_of
from tests.browser.checks import accessible_and_photographed
from tests.support.services import ROOT, WebProcess
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHOTS = ROOT / "var" / "screenshots" / "pages"


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A page in a fresh context of the shared Chromium (``tests/browser/conftest.py``)."""
    context = chromium.new_context()
    opened = context.new_page()
    yield opened
    context.close()


def person(client: TestClient, auth: dict[str, str], stack: Stack) -> tuple[str, str]:
    user_id = f"u-browser-{uuid.uuid4().hex[:10]}"
    address = f"{user_id}@example.com"
    assert (
        client.put(f"/v1/users/{user_id}", json={"email": address}, headers=auth).status_code == 201
    )
    with stack.sessions() as session:
        public_id = session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
    return user_id, str(public_id)


def local(url: str, server: WebProcess) -> str:
    return url.replace("https://notify.example.com", server.base_url)


def product_updates(client: TestClient, auth: dict[str, str], user_id: str) -> bool:
    state = client.get(f"/v1/users/{user_id}/preferences", headers=auth).json()
    return bool(state["categories"]["product_updates"]["subscribed"])


def test_loading_the_unsubscribe_page_with_javascript_changes_nothing_until_the_button_is_pressed(
    stack: Stack, client: TestClient, auth: dict[str, str], web_server: WebProcess, page: Page
) -> None:
    user_id, public_id = person(client, auth, stack)
    url = local(unsubscribe_url(stack.settings, public_id, "product_updates"), web_server)

    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200
    page.wait_for_timeout(2000)  # as long as a scanner would linger
    assert product_updates(client, auth, user_id)
    assert "Product updates" in page.content() or "product updates" in page.content()

    page.get_by_role("button", name="Unsubscribe from product updates").click()
    page.wait_for_load_state("networkidle")
    assert "You are unsubscribed" in page.content()
    assert not product_updates(client, auth, user_id)

    page.get_by_role("button", name="Undo: subscribe me again").click()
    page.wait_for_load_state("networkidle")
    assert "subscribed again" in page.content()
    assert product_updates(client, auth, user_id)


def test_the_preference_page_shows_essential_mail_as_always_on_and_saves_a_change(
    stack: Stack, client: TestClient, auth: dict[str, str], web_server: WebProcess, page: Page
) -> None:
    user_id, public_id = person(client, auth, stack)
    url = local(preferences_url(stack.settings, public_id), web_server)

    page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(1000)
    assert product_updates(client, auth, user_id)
    essential = page.locator("input[type=checkbox][disabled]")
    assert essential.count() == 2
    assert all(essential.nth(i).is_checked() for i in range(2))
    optional = page.locator("input[name=category][value=product_updates]")
    assert optional.is_checked()

    optional.uncheck()
    page.get_by_role("button", name="Save my preferences").click()
    page.wait_for_load_state("networkidle")
    assert "Saved." in page.content()
    assert not product_updates(client, auth, user_id)
    assert not page.locator("input[name=category][value=product_updates]").is_checked()


def test_the_pages_fit_a_phone_screen_without_sideways_scrolling(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    web_server: WebProcess,
    chromium: Browser,
) -> None:
    _, public_id = person(client, auth, stack)
    context = chromium.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    phone = context.new_page()
    try:
        for url in (
            unsubscribe_url(stack.settings, public_id, "product_updates"),
            preferences_url(stack.settings, public_id),
        ):
            phone.goto(local(url, web_server), wait_until="networkidle")
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, url
    finally:
        context.close()


def test_a_person_pauses_updates_and_sets_quiet_hours_on_the_preference_page(
    stack: Stack, client: TestClient, auth: dict[str, str], web_server: WebProcess, page: Page
) -> None:
    user_id, public_id = person(client, auth, stack)
    page.goto(local(preferences_url(stack.settings, public_id), web_server))
    page.get_by_label("Take a break from product updates").select_option(label="Pause for 30 days")
    page.get_by_label("Hold optional emails during these hours every day").check()
    page.get_by_label("From", exact=True).fill("21:30")
    page.get_by_label("Until", exact=True).fill("06:45")
    page.get_by_role("button", name="Save my preferences").click()
    page.wait_for_load_state("networkidle")
    assert "Saved." in page.content()
    notice = page.locator("#paused-product_updates").inner_text()
    assert notice.startswith("Paused until ") and "starts again by itself" in notice
    assert page.get_by_label("From", exact=True).input_value() == "21:30"
    assert page.get_by_label("Hold optional emails during these hours every day").is_checked()
    accessible_and_photographed(page, "preferences-paused", SHOTS)

    state = client.get(f"/v1/users/{user_id}/preferences", headers=auth).json()
    assert state["quiet_hours"] == {"start": "21:30", "end": "06:45"}
    assert state["categories"]["product_updates"]["paused_until"] is not None
    assert state["categories"]["product_updates"]["subscribed"] is True
    actions = [e["action"] for e in client.get(f"/v1/users/{user_id}/consent", headers=auth).json()]
    # (saving also confirms the page's language for a person who had none: language:en)
    assert {"paused", "quiet_hours:21:30-06:45"} <= set(actions)

    page.get_by_label("Take a break from product updates").select_option(label="End the pause now")
    page.get_by_label("Hold optional emails during these hours every day").uncheck()
    page.get_by_role("button", name="Save my preferences").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("#paused-product_updates").count() == 0
    state = client.get(f"/v1/users/{user_id}/preferences", headers=auth).json()
    assert state["quiet_hours"] is None
    assert state["categories"]["product_updates"]["paused_until"] is None


def test_a_person_held_after_a_scanners_burst_confirms_with_a_tick_and_a_press(
    stack: Stack, client: TestClient, auth: dict[str, str], web_server: WebProcess, page: Page
) -> None:
    """The browser's network is held (as after a burst, see tests/integration/
    test_scanner_guard.py): pressing the page's button asks to confirm and changes nothing;
    the box must be ticked before the press counts."""
    user_id, public_id = person(client, auth, stack)
    key = source_of(stack.settings.hash_key, "127.0.0.1", None).network_key
    with stack.sessions.begin() as session:
        until = datetime.now(UTC) + timedelta(minutes=5)
        session.add(ScannerHold(source_key=key, kind="network", until=until))
    try:
        page.goto(local(unsubscribe_url(stack.settings, public_id, "product_updates"), web_server))
        page.get_by_role("button", name="Unsubscribe from product updates").click()
        page.wait_for_load_state("networkidle")
        assert page.get_by_role("heading", name="Please confirm").count() == 1
        assert product_updates(client, auth, user_id)
        accessible_and_photographed(page, "unsubscribe-confirm", SHOTS)
        page.get_by_role("button", name="Confirm").click()  # unticked: the browser refuses
        assert page.get_by_role("heading", name="Please confirm").count() == 1
        assert product_updates(client, auth, user_id)
        page.get_by_label("Yes, stop sending product updates").check()
        page.get_by_role("button", name="Confirm").click()
        page.wait_for_load_state("networkidle")
        assert "You are unsubscribed" in page.content()
        assert not product_updates(client, auth, user_id)
    finally:
        with stack.sessions.begin() as session:
            session.execute(delete(ScannerHold).where(ScannerHold.source_key == key))
