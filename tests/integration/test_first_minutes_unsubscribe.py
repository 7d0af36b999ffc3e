"""The unsubscribe page for someone already unsubscribed, and the consent source of each way of
unsubscribing: ``page`` for the page's own button, ``one_click`` for a mail client's RFC 8058
POST, each counted on its own in the stats. RFC 8058 stays exact: any body, no cookie, no
redirect, unsubscribed at once.

Against an app of the test's own (``own_stack``), sharing nothing with other runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from notify.message.tokens import unsubscribe_token
from notify.models import ConsentEvent, Recipient
from notify.web.app import create_app
from notify.web.routes.unsubscribe import source_of
from tests.support.stack import OwnStack

ONE_CLICK = {"content": b"List-Unsubscribe=One-Click"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def own_client(own_stack: OwnStack) -> Iterator[TestClient]:
    with TestClient(create_app(own_stack.settings), raise_server_exceptions=False) as test_client:
        yield test_client


def new_person(own_stack: OwnStack, own_client: TestClient, user_id: str) -> str:
    """The person's unsubscribe token for product updates."""
    answer = own_client.put(
        f"/v1/users/{user_id}", json={"email": f"{user_id}@example.com"}, headers=own_stack.auth
    )
    assert answer.status_code == 201
    with own_stack.sessions() as session:
        public_id = session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
    return unsubscribe_token(own_stack.settings.secret_key_list, str(public_id), "product_updates")


def subscribed(own_stack: OwnStack, own_client: TestClient, user_id: str) -> bool:
    state = own_client.get(f"/v1/users/{user_id}/preferences", headers=own_stack.auth).json()
    return bool(state["categories"]["product_updates"]["subscribed"])


def consent(own_stack: OwnStack, own_client: TestClient, user_id: str) -> list[tuple[str, str]]:
    events = own_client.get(f"/v1/users/{user_id}/consent", headers=own_stack.auth).json()
    return [(event["action"], event["source"]) for event in events]


def test_the_pages_button_is_recorded_as_page(own_stack: OwnStack, own_client: TestClient) -> None:
    token = new_person(own_stack, own_client, "u-page")
    shown = own_client.get(f"/u/{token}")
    assert 'name="via" value="page"' in shown.text
    answer = own_client.post(f"/u/{token}", data={"via": "page"})
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert consent(own_stack, own_client, "u-page") == [("unsubscribed", "page")]
    assert not subscribed(own_stack, own_client, "u-page")


@pytest.mark.parametrize(
    ("request_options", "name"),
    [
        ({**ONE_CLICK, "headers": FORM}, "as-gmail-sends-it"),
        ({}, "empty"),
        ({"content": b"\xff\xfe garbage", "headers": FORM}, "garbage"),
        ({"content": b'{"a": 1}', "headers": {"Content-Type": "application/json"}}, "json"),
        ({"files": {"x": ("x.txt", b"x")}}, "multipart"),
        ({"content": b"x" * 200_000, "headers": FORM}, "over-the-body-limit"),
        ({"content": iter([b"x" * 30_000] * 4), "headers": FORM}, "chunked-over-the-limit"),
    ],
)
def test_any_other_post_is_a_one_click_unsubscribe_at_once_without_cookie_or_redirect(
    own_stack: OwnStack, own_client: TestClient, request_options: dict[str, Any], name: str
) -> None:
    user_id = f"u-{name}"
    token = new_person(own_stack, own_client, user_id)
    answer = own_client.post(f"/u/{token}", follow_redirects=False, **request_options)
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers and "location" not in answer.headers
    assert not subscribed(own_stack, own_client, user_id)
    assert consent(own_stack, own_client, user_id) == [("unsubscribed", "one_click")]


def test_an_already_unsubscribed_person_is_told_so_and_offered_to_subscribe_again(
    own_stack: OwnStack, own_client: TestClient
) -> None:
    token = new_person(own_stack, own_client, "u-again")
    own_client.post(f"/u/{token}", headers=FORM, **ONE_CLICK)
    before = consent(own_stack, own_client, "u-again")

    for method in ("GET", "HEAD"):
        shown = own_client.request(method, f"/u/{token}")
        assert shown.status_code == 200
    page = own_client.get(f"/u/{token}").text
    assert "You are already unsubscribed from product updates" in page
    assert "Unsubscribe from product updates" not in page  # not asked again
    assert 'href="/preferences/' in page
    assert consent(own_stack, own_client, "u-again") == before  # looking changed nothing
    assert not subscribed(own_stack, own_client, "u-again")

    # The page's button, as the browser sends it.
    form = own_client.post(f"/u/{token}/undo", data={"via": "page", "category": "product_updates"})
    assert form.status_code == 200 and "You are subscribed again" in form.text
    assert subscribed(own_stack, own_client, "u-again")
    assert consent(own_stack, own_client, "u-again")[0] == ("subscribed", "page")
    assert "Unsubscribe from product updates?" in own_client.get(f"/u/{token}").text


def test_undo_right_after_an_unsubscribe_is_still_recorded_as_undo(
    own_stack: OwnStack, own_client: TestClient
) -> None:
    token = new_person(own_stack, own_client, "u-undo")
    own_client.post(f"/u/{token}", data={"via": "page"})
    own_client.post(f"/u/{token}/undo", data={"category": "product_updates"})
    assert consent(own_stack, own_client, "u-undo") == [
        ("subscribed", "undo"),
        ("unsubscribed", "page"),
    ]


def test_the_stats_count_page_and_one_click_unsubscribes_apart(
    own_stack: OwnStack, own_client: TestClient
) -> None:
    for number in range(3):
        token = new_person(own_stack, own_client, f"u-click-{number}")
        own_client.post(f"/u/{token}", headers=FORM, **ONE_CLICK)
    for number in range(2):
        token = new_person(own_stack, own_client, f"u-button-{number}")
        own_client.post(f"/u/{token}", data={"via": "page"})
    token = new_person(own_stack, own_client, "u-all")
    own_client.post(f"/u/{token}", data={"via": "page", "scope": "all"})
    today = datetime.now(UTC).date()
    answer = own_client.get(f"/v1/stats?from={today}&to={today}", headers=own_stack.auth)
    assert answer.status_code == 200
    routes = {
        entry["route"]: entry["count"]
        for entry in answer.json()["unsubscribes"]
        if entry["category"] == "product_updates"
    }
    assert routes == {"one_click": 3, "page": 3}
    with own_stack.sessions() as session:
        sources = session.scalars(select(ConsentEvent.source)).all()
    assert sorted(sources) == ["one_click"] * 3 + ["page"] * 3


def test_the_source_rule() -> None:
    assert source_of({"List-Unsubscribe": ["One-Click"]}, subscribed=False) == "one_click"
    assert source_of({}, subscribed=False) == "one_click"
    assert source_of({"via": ["page"]}, subscribed=False) == "page"
    assert source_of({"scope": ["all"]}, subscribed=False) == "page"
    assert source_of({"via": ["mail"]}, subscribed=False) == "one_click"
    assert source_of({}, subscribed=True) == "undo"
    assert source_of({"via": ["page"]}, subscribed=True) == "page"


def test_a_bad_token_changes_nothing_and_says_so(
    own_stack: OwnStack, own_client: TestClient
) -> None:
    token = new_person(own_stack, own_client, "u-bad")
    for path in (f"/u/{token[:-4]}", f"/u/{token[:-4]}/undo"):
        answer = own_client.post(path, data={"via": "page"})
        assert answer.status_code == 404 and "This link is not valid" in answer.text
    assert own_client.get(f"/u/{token}x").status_code == 404
    assert consent(own_stack, own_client, "u-bad") == []
