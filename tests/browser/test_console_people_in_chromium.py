"""A person's page in the console, in Debian's Chromium, on the shared stack (a real worker on
PostgreSQL and Redis): an operator finds a person by user id and reads why each of their
messages went out or not, as the worker's claim recorded it, and what a message would meet now."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import BrowserContext

from tests.browser.checks import sign_in
from tests.browser.test_console_in_chromium import PASSWORD, check_and_photograph
from tests.support.services import WebProcess
from tests.support.stack import Stack, new_person, operator_with_password, send, wait_for_status

pytestmark = pytest.mark.integration


def test_an_operator_reads_why_each_message_to_a_person_went_out_or_not(
    stack: Stack,
    web_server: WebProcess,
    tab: BrowserContext,
    client: TestClient,
    auth: dict[str, str],
) -> None:
    user_id = new_person(client, auth, "person")
    address, tag = f"{user_id}@example.com", user_id.removeprefix("person-")
    operator_address = f"support-{tag}@example.com"
    with stack.sessions.begin() as session:
        operator_with_password(session, operator_address, "marketing", PASSWORD)
    unsubscribed = client.patch(
        f"/v1/users/{user_id}/preferences", json={"product_updates": False}, headers=auth
    )
    assert unsubscribed.status_code == 200
    wait_for_status(stack, send(client, auth, user_id, "security_alert"), "sent")
    wait_for_status(stack, send(client, auth, user_id, "product_update"), "suppressed")

    page = tab.new_page()
    sign_in(page, web_server.base_url, operator_address, PASSWORD)
    page.get_by_role("link", name="People").click()
    page.get_by_label("User id").fill(user_id)
    page.get_by_role("button", name="Find").click()
    page.wait_for_url("**/console/people?user_id=*")

    now = {
        row.locator("td").nth(0).inner_text(): row.locator("td").nth(1).inner_text()
        for row in page.locator("#now tbody tr").all()
    }
    assert now["Security alerts"] == "goes out"
    assert now["Product updates"] == "not sent: unsubscribed"
    rows = [row.inner_text() for row in page.locator("#notifications tbody tr").all()]
    assert len(rows) == 2
    suppressed = next(row for row in rows if "product_update" in row)
    assert "suppressed (unsubscribed)" in suppressed
    assert "the person's own choice; chose no by api (consent event" in suppressed
    sent = next(row for row in rows if "security_alert" in row)
    assert "goes out" in sent and "essential mail always goes out" in sent
    consent_rows = [
        [cell.inner_text() for cell in row.locator("td").all()]
        for row in page.locator("#consent tbody tr").all()
    ]
    assert [(row[3], row[5]) for row in consent_rows] == [("unsubscribed", "1")]
    assert address not in page.content()
    check_and_photograph(page, "person")

    missing = page.goto(f"{web_server.base_url}/console/people?user_id=nobody-{tag}")
    assert missing is not None and missing.status == 404
    assert page.get_by_role("alert").inner_text() == "No person has this user id."
    too_long = page.goto(f"{web_server.base_url}/console/people?user_id={'x' * 201}")
    assert too_long is not None and too_long.status == 400
    check_and_photograph(page, "person-missing")
