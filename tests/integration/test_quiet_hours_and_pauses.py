"""Quiet hours and pauses end to end: real PostgreSQL, Redis, a Celery worker process and
aiosmtpd. People choose them on the preference page; the worker delays or stops optional mail
and never essential mail; a campaign holds back only the people concerned and still completes.

Where a test needs the window or the pause to be over, it moves the stored time into the past
rather than waiting for the clock (said at each place)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from notify.message.tokens import preferences_token
from notify.models import CampaignBatch, Notification, Pause, Recipient
from tests.integration.test_campaigns import create, tag, wait_status
from tests.support.services import wait_until
from tests.support.stack import Stack, new_person, send, wait_for_status

pytestmark = pytest.mark.integration


def _page(stack: Stack, user_id: str) -> str:
    with stack.sessions() as session:
        public_id = session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
    return f"/preferences/{preferences_token(stack.settings.secret_key_list, str(public_id))}"


def _choose(client: TestClient, stack: Stack, user_id: str, **form: str) -> Any:
    """Press "save" on the person's preference page with product updates ticked and ``form``."""
    fields = {"choices": "1", "category": "product_updates", **form}
    return client.post(_page(stack, user_id), data=fields)


def _window_around_now() -> tuple[str, str, datetime]:
    """Quiet hours (UTC) from an hour ago to two minutes from now, and when they end."""
    now = datetime.now(UTC)
    end = (now + timedelta(minutes=2)).replace(second=0, microsecond=0)
    return f"{now - timedelta(hours=1):%H:%M}", f"{end:%H:%M}", end


def _row(stack: Stack, notification_id: str) -> Notification:
    with stack.sessions() as session:
        return session.get_one(Notification, notification_id)


def test_quiet_hours_hold_an_update_to_their_end_and_let_an_alert_through(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = new_person(client, auth, "quiet")
    start, end_text, end = _window_around_now()
    saved = _choose(client, stack, user_id, quiet="1", quiet_start=start, quiet_end=end_text)
    assert saved.status_code == 200 and "Saved." in saved.text
    prefs = client.get(f"/v1/users/{user_id}/preferences", headers=auth).json()
    assert prefs["quiet_hours"] == {"start": start, "end": end_text}

    alert = send(client, auth, user_id, "security_alert")
    held = send(client, auth, user_id, "product_update")
    wait_for_status(stack, alert, "sent")
    wait_until(
        lambda: _row(stack, held).attempts == 0 and _explained(client, auth, held),
        30,
        "the update's claim to hold it back",
    )
    row = _row(stack, held)
    assert (row.status, row.next_attempt_at) == ("queued", end)
    assert len(stack.smtp.handler.messages_to(f"{user_id}@example.com")) == 1  # the alert
    decision = _explained(client, auth, held)
    assert datetime.fromisoformat(decision["delayed_until"]) == end
    assert decision["sends"] is False and decision["blocked"] is None
    assert decision["quiet_hours"] == {"window": f"{start}-{end_text}", "time_zone": "UTC"}

    # The window is over: the person turned quiet hours off, and the clock is moved on by
    # setting the message's due time to the past (rather than waiting two minutes).
    assert _choose(client, stack, user_id).status_code == 200
    with stack.sessions.begin() as session:
        session.execute(
            update(Notification)
            .where(Notification.id == held)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=10))
        )
    wait_for_status(stack, held, "sent")  # published again by the sweeper
    assert len(stack.smtp.handler.messages_to(f"{user_id}@example.com")) == 2
    assert _explained(client, auth, held)["sends"] is True


def _explained(client: TestClient, auth: dict[str, str], notification_id: str) -> Any:
    answer = client.get(f"/v1/notifications/{notification_id}/explain", headers=auth)
    assert answer.status_code == 200, answer.text
    return answer.json()["decision"]


def test_a_pause_stops_updates_until_it_ends_and_is_logged(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = new_person(client, auth, "pause")
    assert _choose(client, stack, user_id, pause_product_updates="30").status_code == 200
    prefs = client.get(f"/v1/users/{user_id}/preferences", headers=auth).json()
    paused_until = datetime.fromisoformat(prefs["categories"]["product_updates"]["paused_until"])
    assert timedelta(days=29, hours=23) < paused_until - datetime.now(UTC) <= timedelta(days=30)
    assert prefs["categories"]["product_updates"]["subscribed"] is True  # paused, not gone

    stopped = send(client, auth, user_id, "product_update")
    alert = send(client, auth, user_id, "security_alert")
    assert wait_for_status(stack, stopped, "suppressed").reason == "paused"
    wait_for_status(stack, alert, "sent")
    assert _explained(client, auth, stopped)["rule"] == "paused"
    events = client.get(f"/v1/users/{user_id}/consent", headers=auth).json()
    assert [(e["action"], e["source"]) for e in events][:1] == [("paused", "preference_centre")]

    # Thirty days later (the pause's end moved into the past): updates flow again by themselves.
    with stack.sessions.begin() as session:
        session.execute(
            update(Pause)
            .where(
                Pause.recipient_id
                == select(Recipient.id).where(Recipient.user_id == user_id).scalar_subquery()
            )
            .values(until=datetime.now(UTC) - timedelta(seconds=1))
        )
    wait_for_status(stack, send(client, auth, user_id, "product_update"), "sent")


def test_a_campaign_holds_back_only_the_person_in_quiet_hours_and_still_completes(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    locale = tag()
    awake = new_person(client, auth, "awake", locale=locale)
    asleep = new_person(client, auth, "asleep", locale=locale)
    resting = new_person(client, auth, "resting", locale=locale)
    start, end_text, end = _window_around_now()
    _choose(client, stack, asleep, quiet="1", quiet_start=start, quiet_end=end_text)
    _choose(client, stack, resting, pause_product_updates="90")
    campaign_id = create(client, auth, locale)
    assert client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth).status_code == 200
    wait_until(
        lambda: stack.smtp.handler.messages_to(f"{awake}@example.com"), 60, "the awake person"
    )

    def rows() -> dict[str, Notification]:
        with stack.sessions() as session:
            found = session.execute(
                select(Recipient.user_id, Notification)
                .join(Recipient, Recipient.id == Notification.recipient_id)
                .where(Notification.campaign_id == campaign_id)
            ).all()
        return {str(user): row for user, row in found}

    held = wait_until(
        lambda: (found := rows()).get(asleep) and found[asleep].next_attempt_at == end and found,
        30,
        "the sleeping person's message to wait",
    )
    assert set(held) == {awake, asleep}  # the paused person is not in the audience now
    assert held[asleep].status == "queued"
    status = client.get(f"/v1/campaigns/{campaign_id}", headers=auth).json()
    assert status["status"] == "running"  # it waits for the one held back
    assert datetime.fromisoformat(_explained(client, auth, held[asleep].id)["delayed_until"]) == end
    assert stack.smtp.handler.messages_to(f"{asleep}@example.com") == []

    def batch_status() -> str:
        with stack.sessions() as session:
            return str(session.get_one(CampaignBatch, held[asleep].batch_id).status)

    wait_until(lambda: batch_status() == "pending", 30, "the batch to wait for its held row")
    # The night is over (its end moved into the past, quiet hours off): the campaign completes.
    _choose(client, stack, asleep)
    with stack.sessions.begin() as session:
        past = datetime.now(UTC) - timedelta(seconds=10)
        session.execute(
            update(Notification)
            .where(Notification.id == held[asleep].id)
            .values(next_attempt_at=past)
        )
        session.execute(
            update(CampaignBatch)
            .where(CampaignBatch.id == held[asleep].batch_id, CampaignBatch.status == "pending")
            .values(due_at=past)
        )
    wait_status(client, auth, campaign_id, "completed", timeout=60)
    assert len(stack.smtp.handler.messages_to(f"{asleep}@example.com")) == 1
    assert len(stack.smtp.handler.messages_to(f"{awake}@example.com")) == 1
    assert stack.smtp.handler.messages_to(f"{resting}@example.com") == []


def test_a_malformed_window_or_pause_saves_nothing_and_says_why(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = new_person(client, auth, "quiet-bad")
    for form in (
        {"quiet": "1", "quiet_start": "25:00", "quiet_end": "07:00"},
        {"quiet": "1", "quiet_start": "22:00"},
        {"pause_product_updates": "45"},
        {"pause_product_updates": "forever"},
    ):
        answer = _choose(client, stack, user_id, **form)
        assert answer.status_code == 400, form
        assert "Nothing was saved" in answer.text
    events = client.get(f"/v1/users/{user_id}/consent", headers=auth).json()
    assert events == []
