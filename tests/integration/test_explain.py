"""Explanations end to end: real PostgreSQL, Redis, a Celery worker process and aiosmtpd. The
worker's claim records the decision; the API reads it back, and answers a dry run for now."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from notify.models import Notification, NotificationDecision
from tests.integration.test_campaigns import create, import_users, tag, wait_status
from tests.support.stack import Stack, make_key, new_person, send, wait_for_status

pytestmark = pytest.mark.integration


def _explained(client: TestClient, auth: dict[str, str], notification_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/notifications/{notification_id}/explain", headers=auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_sent_alert_and_a_suppressed_update_explain_themselves(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = new_person(client, auth, "explain")
    address = f"{user_id}@example.com"
    unsubscribe = client.patch(
        f"/v1/users/{user_id}/preferences", json={"product_updates": False}, headers=auth
    )
    assert unsubscribe.status_code == 200
    alert = send(client, auth, user_id, "security_alert")
    update = send(client, auth, user_id, "product_update")
    wait_for_status(stack, alert, "sent")
    wait_for_status(stack, update, "suppressed")
    assert len(stack.smtp.handler.messages_to(address)) == 1

    sent = _explained(client, auth, alert)
    assert sent["status"] == "sent"
    assert sent["decision"]["decided_by"] == "claim"
    assert sent["decision"]["sends"] is True and sent["decision"]["rule"] == "essential"
    assert sent["decision"]["category"]["lane"] == "essential"

    held = _explained(client, auth, update)
    assert (held["status"], held["reason"]) == ("suppressed", "unsubscribed")
    decision = held["decision"]
    assert (decision["sends"], decision["blocked"], decision["rule"]) == (
        False,
        "unsubscribed",
        "stored_choice",
    )
    assert decision["choice"]["subscribed"] is False
    assert decision["choice"]["consent_event"]["route"] == "api"
    consent = client.get(f"/v1/users/{user_id}/consent", headers=auth).json()
    assert decision["choice"]["consent_event"]["at"] is not None
    assert any(event["action"] == "unsubscribed" for event in consent)
    for body in (sent, held):
        assert address not in str(body) and user_id not in str(body)


def test_only_the_sending_key_or_a_reader_of_users_may_read_an_explanation(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = new_person(client, auth, "explain")
    sender = {"Authorization": f"Bearer {make_key(stack.sessions, 'notifications:send')}"}
    other = {"Authorization": f"Bearer {make_key(stack.sessions, 'notifications:send')}"}
    reader = {"Authorization": f"Bearer {make_key(stack.sessions, 'users:read')}"}
    nobody = {"Authorization": f"Bearer {make_key(stack.sessions, 'campaigns:read')}"}
    alert = send(client, sender, user_id, "security_alert")
    wait_for_status(stack, alert, "sent")
    assert _explained(client, sender, alert)["decision"]["sends"] is True
    assert _explained(client, reader, alert)["decision"]["sends"] is True
    path = f"/v1/notifications/{alert}/explain"
    assert client.get(path, headers=other).status_code == 404
    assert client.get(path, headers=nobody).status_code == 403
    assert client.get(path).status_code == 401
    missing = client.get(f"/v1/notifications/{uuid.uuid4()}/explain", headers=reader)
    assert missing.status_code == 404 and missing.json()["detail"] == "no such notification"


def test_a_campaigns_messages_carry_the_campaign_in_their_explanation(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    locale = tag()
    import_users(client, auth, locale, 3)
    client.patch(f"/v1/users/{locale}-1/preferences", json={"product_updates": False}, headers=auth)
    campaign_id = create(client, auth, locale, rate_limit=50)
    assert client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth).status_code == 200
    wait_status(client, auth, campaign_id, "completed")
    with stack.sessions() as session:
        rows = session.execute(
            select(Notification.id, Notification.status).where(
                Notification.campaign_id == campaign_id
            )
        ).all()
    assert sorted(str(status) for _, status in rows) == ["sent", "sent"]  # the audience left
    # out the person who had unsubscribed (a later unsubscribe is decided at the claim: the
    # domain tests record that verdict)
    for notification_id, _ in rows:
        sent = _explained(client, auth, notification_id)["decision"]
        assert sent["campaign"] == {"id": campaign_id, "status": "running", "rate_per_second": 50.0}
        assert sent["sends"] is True and sent["rule"] == "category_default"


def test_the_dry_run_answers_for_now_and_sends_and_writes_nothing(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = new_person(client, auth, "explain")
    address = f"{user_id}@example.com"

    def dry_runs_stored() -> int:
        """Records a dry run wrote, if any did: a worker's claims (of other tests' messages,
        meanwhile) write records too, but always as ``claim``."""
        decided_by = NotificationDecision.record["decided_by"].as_string()
        with stack.sessions() as session:
            stored = select(func.count()).where(decided_by == "dry_run")
            return int(session.scalar(stored.select_from(NotificationDecision)) or 0)

    asked = {"template": "product_update", "user_id": user_id}
    first = client.post("/v1/explain", json=asked, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json()["decision"]["decided_by"] == "dry_run"
    assert first.json()["decision"]["sends"] is True
    assert first.json()["decision"]["rule"] == "category_default"
    client.patch(f"/v1/users/{user_id}/preferences", json={"product_updates": False}, headers=auth)
    second = client.post("/v1/explain", json=asked, headers=auth).json()["decision"]
    assert (second["sends"], second["blocked"]) == (False, "unsubscribed")
    alert = client.post(
        "/v1/explain", json={"template": "security_alert", "user_id": user_id}, headers=auth
    ).json()["decision"]
    assert (alert["sends"], alert["rule"]) == (True, "essential")
    assert dry_runs_stored() == 0
    assert stack.smtp.handler.messages_to(address) == []


def test_the_dry_run_refuses_bad_requests_clearly(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = new_person(client, auth, "explain")
    cases = [
        ({"template": "product_update", "user_id": "nobody-at-all"}, 404, "no such user"),
        ({"template": "no_such_template", "user_id": user_id}, 404, "no_such_template"),
        ({"template": "product_update"}, 422, "user_id"),
        ({"template": "product_update", "user_id": user_id, "extra": 1}, 422, "extra"),
    ]
    for body, status, said in cases:
        answer = client.post("/v1/explain", json=body, headers=auth)
        assert answer.status_code == status, (body, answer.text)
        assert said in answer.text
    reader_of_users = {"Authorization": f"Bearer {make_key(stack.sessions, 'users:read')}"}
    asked = {"template": "product_update", "user_id": user_id}
    assert client.post("/v1/explain", json=asked, headers=reader_of_users).status_code == 403
