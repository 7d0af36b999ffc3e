"""The privacy policy's promises on the real stack: access, correction, erasure, retention,
encryption at rest, least privilege, aggregates without personal data."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text, update

from notify import crypto
from notify.db import make_engine, make_session_factory, open_database
from notify.delivery import outbox
from notify.message.tokens import unsubscribe_token
from notify.migrate import upgrade
from notify.models import Notification, Recipient
from notify.people import decisions
from notify.privacy import key_rotation, retention, rights
from tests.support.services import create_postgres_database, wait_until
from tests.support.stack import Stack, make_key, sample_data, wait_for_status

pytestmark = pytest.mark.integration


def person(client: TestClient, auth: dict[str, str]) -> tuple[str, str]:
    token = uuid.uuid4().hex[:10]
    user_id, address = f"u-priv-{token}", f"priv.{token}@example.com"
    assert (
        client.put(
            f"/v1/users/{user_id}",
            json={"email": address, "locale": "fr-FR", "timezone": "Europe/Paris"},
            headers=auth,
        ).status_code
        == 201
    )
    return user_id, address


def send(client: TestClient, auth: dict[str, str], user_id: str, template: str, **data: Any) -> str:
    body = {"template": template, "user_id": user_id, "data": {**sample_data(template), **data}}
    response = client.post("/v1/notifications", json=body, headers=auth)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def every_text_in_the_database(stack: Stack) -> str:
    """All rows of all tables, every column cast to text."""
    chunks = []
    with stack.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                chunks.append(" ".join(str(value) for value in row))
    return "\n".join(chunks)


def test_export_holds_the_persons_profile_preferences_consent_suppression_and_log_and_nobody_elses(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = person(client, auth)
    other_id, other_address = person(client, auth)
    sent = send(client, auth, user_id, "security_alert")
    send(client, auth, other_id, "security_alert")
    wait_for_status(stack, sent, "sent")
    client.patch(f"/v1/users/{user_id}/preferences", json={"product_updates": False}, headers=auth)

    document = client.get(f"/v1/users/{user_id}/export", headers=auth)
    assert document.status_code == 200
    exported = document.json()
    assert exported["profile"]["email"] == address
    assert exported["profile"]["timezone"] == "Europe/Paris"
    assert exported["preferences"]["product_updates"]["subscribed"] is False
    assert exported["consent_history"][0]["source"] == "api"
    assert exported["suppression"] == {"suppressed": False, "reason": None}
    [entry] = exported["notifications"]
    assert entry["id"] == sent and entry["status"] == "sent" and entry["message_id"].endswith(">")
    assert entry["data"]["event"] == sample_data("security_alert")["event"]
    assert other_address not in document.text and other_id not in document.text
    assert client.get("/v1/users/u-nobody-here/export", headers=auth).status_code == 404


def test_export_works_on_sqlite_too(tmp_path: Path, stack: Stack) -> None:
    from notify.people import recipients

    url = f"sqlite:///{tmp_path / 'export.sqlite'}"
    upgrade(url)
    settings = stack.settings.model_copy(update={"database_url": url})
    sessions = make_session_factory(open_database(settings))
    with sessions.begin() as session:
        recipient, _ = recipients.upsert(session, "u-lite", email="lite@example.com", hash_key="k")
        session.add(
            Notification(
                recipient_id=recipient.id,
                template="admin_notice",
                category="admin",
                data={"first_name": "Lite"},
                status="sent",
            )
        )
    with sessions() as session:
        recipient = recipients.get_by_user_id(session, "u-lite")
        assert recipient is not None
        document = rights.export(session, recipient, hash_key="k", defaults=frozenset())
    assert document["profile"]["email"] == "lite@example.com"
    assert document["notifications"][0]["data"] == {"first_name": "Lite"}


def test_a_changed_address_takes_the_persons_suppression_along_unless_it_was_a_hard_bounce(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = person(client, auth)
    client.post(
        "/v1/suppressions/reports", json={"email": address, "type": "complaint"}, headers=auth
    )
    new_address = f"new-{uuid.uuid4().hex[:8]}@example.com"
    client.put(f"/v1/users/{user_id}", json={"email": new_address}, headers=auth)
    row = wait_for_status(stack, send(client, auth, user_id, "product_update"), "suppressed")
    assert row.reason == "complained"

    bounced_id, bounced = person(client, auth)
    client.post(
        "/v1/suppressions/reports",
        json={"email": bounced, "type": "bounce", "status": "5.1.1"},
        headers=auth,
    )
    fresh = f"fresh-{uuid.uuid4().hex[:8]}@example.com"
    client.put(f"/v1/users/{bounced_id}", json={"email": fresh}, headers=auth)
    wait_for_status(stack, send(client, auth, bounced_id, "product_update"), "sent")
    assert len(stack.smtp.handler.messages_to(fresh)) == 1


def test_erasure_forgets_the_person_everywhere_and_stops_what_is_queued(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = person(client, auth)
    delivered = send(client, auth, user_id, "admin_notice", message="A secret message body")
    wait_for_status(stack, delivered, "sent")
    client.patch(f"/v1/users/{user_id}/preferences", json={"product_updates": False}, headers=auth)
    client.patch(f"/v1/users/{user_id}/preferences", json={"product_updates": True}, headers=auth)
    stack.worker.stop()
    queued = send(client, auth, user_id, "security_alert")

    assert client.delete(f"/v1/users/{user_id}", headers=auth).status_code == 204
    assert client.delete(f"/v1/users/{user_id}", headers=auth).status_code == 204
    stack.worker.start()
    row = wait_for_status(stack, queued, "suppressed")
    assert row.reason == "erased"
    time.sleep(1)
    assert len(stack.smtp.handler.messages_to(address)) == 1  # only the one sent before

    assert client.get(f"/v1/users/{user_id}/export", headers=auth).status_code == 404
    assert client.get(f"/v1/users/{user_id}", headers=auth).status_code == 404
    everything = every_text_in_the_database(stack)
    for secret in (address, address.split("@")[0], "A secret message body", user_id):
        assert secret not in everything, f"{secret!r} is still stored somewhere"
    with stack.sessions() as session:
        kept = session.get(Notification, delivered)
    assert kept is not None and kept.status == "sent" and kept.data == {}


def test_an_erased_address_imported_again_gets_no_optional_mail_until_a_fresh_opt_in(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = person(client, auth)
    client.delete(f"/v1/users/{user_id}", headers=auth)
    again = f"u-again-{uuid.uuid4().hex[:8]}"
    csv = f"user_id,email\n{again},{address}\n".encode()
    assert (
        client.post(
            "/v1/users/import", content=csv, headers={**auth, "Content-Type": "text/csv"}
        ).json()["imported"]
        == 1
    )
    row = wait_for_status(stack, send(client, auth, again, "product_update"), "suppressed")
    assert row.reason == "suppressed"
    wait_for_status(stack, send(client, auth, again, "security_alert"), "sent")

    client.patch(f"/v1/users/{again}/preferences", json={"product_updates": True}, headers=auth)
    wait_for_status(stack, send(client, auth, again, "product_update"), "sent")


def test_erasure_while_a_campaign_to_the_person_is_queued_sends_them_nothing(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    locale = f"fr-e{uuid.uuid4().hex[:6]}"
    lines = ["user_id,email,locale"] + [
        f"{locale}-{i},{locale}-{i}@example.com,{locale}" for i in range(40)
    ]
    client.post(
        "/v1/users/import",
        content="\n".join(lines).encode(),
        headers={**auth, "Content-Type": "text/csv"},
    )
    body = {
        "name": "c",
        "template": "product_update",
        "data": sample_data("product_update"),
        "audience": {"locales": [locale]},
        "rate_limit": 10,
    }
    campaign_id = client.post("/v1/campaigns", json=body, headers=auth).json()["id"]
    client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    wait_until(
        lambda: (
            client.get(f"/v1/campaigns/{campaign_id}", headers=auth).json()["counts"]["sent"] >= 3
        ),
        30,
        "the campaign to start",
    )
    last = f"{locale}-39"
    assert client.delete(f"/v1/users/{last}", headers=auth).status_code == 204
    wait_until(
        lambda: (
            client.get(f"/v1/campaigns/{campaign_id}", headers=auth).json()["status"] == "completed"
        ),
        60,
        "the campaign to complete",
    )
    assert stack.smtp.handler.messages_to(f"{last}@example.com") == []
    counts = client.get(f"/v1/campaigns/{campaign_id}", headers=auth).json()["counts"]
    assert counts["suppressed"] == 1 and counts["sent"] == 39


def test_retention_removes_old_content_and_rows_and_keeps_the_daily_counts(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, _ = person(client, auth)
    ids = [send(client, auth, user_id, "security_alert") for _ in range(3)]
    for notification_id in ids:
        wait_for_status(stack, notification_id, "sent")
    now = datetime.now(UTC)
    ages = {ids[0]: 400, ids[1]: 40, ids[2]: 1}  # days old: deleted, emptied, kept
    with stack.sessions.begin() as session:
        for notification_id, days in ages.items():
            session.execute(
                update(Notification)
                .where(Notification.id == notification_id)
                .values(created_at=now - timedelta(days=days))
            )
    day_old = (now - timedelta(days=400)).date()
    stats_key = {"Authorization": f"Bearer {make_key(stack.sessions, 'campaigns:read')}"}

    def sent_on(day: date) -> int:
        found = client.get(f"/v1/stats?from={day}&to={day}", headers=stats_key).json()["days"]
        return sum(entry["sent"] for entry in found if entry["template"] == "security_alert")

    before = sent_on(day_old)
    assert before >= 1
    with stack.sessions() as session:  # each claim explained itself
        assert decisions.recorded(session, ids[0]) is not None
    report = retention.apply_retention(stack.sessions, content_days=30, log_days=395, now=now)
    assert report.rows_deleted >= 1 and report.contents_removed >= 1
    with stack.sessions() as session:
        assert session.get(Notification, ids[0]) is None
        assert decisions.recorded(session, ids[0]) is None  # gone with its notification
        assert decisions.recorded(session, ids[2]) is not None
        emptied = session.get(Notification, ids[1])
        kept = session.get(Notification, ids[2])
    assert emptied is not None and emptied.data == {} and emptied.status == "sent"
    assert kept is not None and kept.data == sample_data("security_alert")
    assert sent_on(day_old) == before


def test_personal_data_is_encrypted_at_rest_and_a_database_dump_shows_none(
    stack: Stack, client: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:
    user_id, address = person(client, auth)
    marker = f"Unique-{uuid.uuid4().hex[:8]}"
    wait_for_status(stack, send(client, auth, user_id, "admin_notice", message=marker), "sent")
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump (PostgreSQL client) is missing"
    dump = subprocess.run(
        [pg_dump, "--data-only", stack.settings.database_url.replace("+psycopg", "")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert user_id in dump  # the dump is real and holds this person's row
    assert address not in dump
    assert address.split("@")[0] not in dump
    assert marker not in dump


def test_data_keys_rotate_without_losing_anything(stack: Stack) -> None:
    """On a database of its own, so the rotation re-encrypts this test's rows, not everything
    the run stored before it (which made it the slowest test)."""
    url, drop = create_postgres_database()
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    user_id = f"rotate-{uuid.uuid4().hex[:8]}"
    address = f"{user_id}@example.com"
    old_keys = stack.settings.data_key_list
    try:
        with sessions.begin() as session:
            made = outbox.submit(
                session,
                None,
                outbox.NotificationRequest(
                    template="security_alert",
                    user_id=user_id,
                    email=address,
                    data=sample_data("security_alert"),
                ),
                max_data_bytes=16_384,
                hash_key="rotation-test",
            )
        with engine.connect() as connection:
            before = connection.execute(
                text("SELECT email FROM recipients WHERE user_id = :u"), {"u": user_id}
            ).scalar_one()
        crypto.install([*old_keys, "a-new-data-key-for-the-rotation-test"])
        assert key_rotation.reencrypt(sessions).changed >= 2  # the address and the template data
        crypto.install(["a-new-data-key-for-the-rotation-test"])  # the old key is gone now
        with sessions() as session:
            assert (
                session.scalar(select(Recipient.email).where(Recipient.user_id == user_id))
                == address
            )
            data = session.scalar(select(Notification.data).where(Notification.id == made.id))
            assert data == sample_data("security_alert")
        with engine.connect() as connection:
            after = connection.execute(
                text("SELECT email FROM recipients WHERE user_id = :u"), {"u": user_id}
            ).scalar_one()
        assert after != before
        crypto.install(old_keys)
        with pytest.raises(crypto.UndecryptableError), sessions() as session:
            session.scalar(select(Recipient.email).where(Recipient.user_id == user_id))
    finally:
        crypto.install(old_keys)
        engine.dispose()
        drop()


# --- least privilege ------------------------------------------------------------------------

ACCESS: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/notifications"): {"notifications:send"},
    ("GET", "/v1/notifications/{notification_id}"): {"notifications:send"},
    ("GET", "/v1/notifications/{notification_id}/explain"): {"notifications:send", "users:read"},
    ("POST", "/v1/explain"): {"preferences:read"},
    ("PUT", "/v1/users/{user_id}"): {"users:write"},
    ("GET", "/v1/users/{user_id}"): {"users:read"},
    ("POST", "/v1/users/import"): {"users:write", "campaigns:write"},
    ("GET", "/v1/users/{user_id}/preferences"): {"preferences:read"},
    ("PATCH", "/v1/users/{user_id}/preferences"): {"preferences:write"},
    ("GET", "/v1/users/{user_id}/consent"): {"preferences:read"},
    ("POST", "/v1/suppressions"): {"preferences:write"},
    ("DELETE", "/v1/suppressions/{email}"): {"preferences:write"},
    ("POST", "/v1/suppressions/reports"): {"preferences:write"},
    ("GET", "/v1/users/{user_id}/export"): {"privacy"},
    ("DELETE", "/v1/users/{user_id}"): {"privacy"},
    ("GET", "/v1/stats"): {"campaigns:read"},
    ("POST", "/v1/campaigns"): {"campaigns:write"},
    ("GET", "/v1/campaigns"): {"campaigns:read"},
    ("GET", "/v1/campaigns/{campaign_id}"): {"campaigns:read"},
    ("POST", "/v1/campaigns/{campaign_id}/schedule"): {"campaigns:write"},
    ("POST", "/v1/campaigns/{campaign_id}/pause"): {"campaigns:write"},
    ("POST", "/v1/campaigns/{campaign_id}/resume"): {"campaigns:write"},
    ("POST", "/v1/campaigns/{campaign_id}/cancel"): {"campaigns:write"},
    ("POST", "/v1/campaigns/{campaign_id}/preview"): {"campaigns:write"},
    ("GET", "/v1/templates"): {"*"},  # any valid key
    ("POST", "/v1/callbacks"): {"callbacks"},
    ("GET", "/v1/callbacks"): {"callbacks"},
    ("GET", "/v1/callbacks/{endpoint_id}"): {"callbacks"},
    ("PATCH", "/v1/callbacks/{endpoint_id}"): {"callbacks"},
    ("DELETE", "/v1/callbacks/{endpoint_id}"): {"callbacks"},
    ("POST", "/v1/callbacks/{endpoint_id}/secrets"): {"callbacks"},
    ("DELETE", "/v1/callbacks/{endpoint_id}/secrets/previous"): {"callbacks"},
    ("GET", "/v1/callbacks/{endpoint_id}/deliveries"): {"callbacks"},
    ("POST", "/v1/callbacks/{endpoint_id}/replay"): {"callbacks"},
}
SINGLE_SCOPES = [
    "notifications:send",
    "users:read",
    "users:write",
    "preferences:read",
    "preferences:write",
    "campaigns:read",
    "campaigns:write",
    "privacy",
    "callbacks",
]


def test_every_api_endpoint_is_in_the_access_matrix(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    routes = {
        (method.upper(), path)
        for path, methods in paths.items()
        if path.startswith("/v1")
        for method in methods
    }
    assert routes == set(ACCESS)


def test_the_access_matrix_holds_for_a_key_with_each_single_scope(
    stack: Stack, client: TestClient
) -> None:
    keys = {
        scope: {"Authorization": f"Bearer {make_key(stack.sessions, scope)}"}
        for scope in SINGLE_SCOPES
    }
    values = {
        "notification_id": "nope",
        "user_id": "u-matrix-nobody",
        "email": "nobody@example.com",
        "campaign_id": "999999",
        "endpoint_id": "999999",
    }
    for (method, path), allowed in ACCESS.items():
        url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
        for scope, headers in keys.items():
            response = client.request(method, url, headers=headers)
            if "*" in allowed or scope in allowed:
                assert response.status_code != 403, (method, path, scope)
            else:
                assert response.status_code == 403, (method, path, scope, response.status_code)
        assert client.request(method, url).status_code == 401, (method, path)


def test_a_revoked_key_is_refused_within_the_key_cache_time(
    stack: Stack, client: TestClient
) -> None:
    """At once in the database; in the web process within NOTIFY_API_KEY_CACHE_SECONDS
    (tests/integration/test_api_key_revocation.py checks that bound at 0 and at the default)."""
    from notify.models import ApiKey
    from notify.producers.api_keys import authenticate, hash_secret, revoke

    secret = make_key(stack.sessions, "users:read")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/v1/users/u-x", headers=headers).status_code == 404
    with stack.sessions.begin() as session:
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.secret_hash == hash_secret(secret)))
        assert revoke(session, int(key_id))
    wait_until(
        lambda: client.get("/v1/users/u-x", headers=headers).status_code == 401,
        stack.settings.api_key_cache_seconds + 2,
        "the revoked key to be refused",
    )
    with stack.sessions() as session:
        assert authenticate(session, secret) is None


def test_stats_count_outcomes_and_unsubscribe_routes_without_any_personal_data(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, _ = person(client, auth)
    wait_for_status(stack, send(client, auth, user_id, "product_update"), "sent")
    with stack.sessions() as session:
        public_id = session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
    client.post(
        f"/u/{unsubscribe_token(stack.settings.secret_key_list, str(public_id), 'product_updates')}"
    )
    wait_for_status(stack, send(client, auth, user_id, "product_update"), "suppressed")
    marketing = {
        "Authorization": f"Bearer {make_key(stack.sessions, 'campaigns:read', 'campaigns:write')}"
    }
    today = datetime.now(UTC).date()
    answer = client.get(f"/v1/stats?from={today}&to={today}", headers=marketing)
    assert answer.status_code == 200
    result = answer.json()
    updates = [e for e in result["days"] if e["template"] == "product_update"]
    assert (
        updates and updates[0]["sent"] >= 1 and updates[0]["suppressed"].get("unsubscribed", 0) >= 1
    )
    assert any(u["route"] == "one_click" and u["count"] >= 1 for u in result["unsubscribes"])
    assert (
        "@" not in answer.text and user_id not in answer.text and str(public_id) not in answer.text
    )
    sender = {"Authorization": f"Bearer {make_key(stack.sessions, 'notifications:send')}"}
    assert client.get("/v1/stats", headers=sender).status_code == 403
    assert (
        client.get(
            f"/v1/stats?from={today}&to={today - timedelta(days=1)}", headers=marketing
        ).status_code
        == 422
    )


def test_consent_events_carry_the_wording_version_and_stats_count_agreement_by_it(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    from notify.categories import CATEGORIES

    def agreeing() -> int:
        figures = client.get("/v1/stats", headers=auth).json()["consent_versions"]
        current = CATEGORIES["product_updates"].version
        return sum(
            row["people"]
            for row in figures
            if row["category"] == "product_updates" and row["version"] == current
        )

    user_id, _ = person(client, auth)
    before = agreeing()
    for subscribed in (False, True):
        answer = client.patch(
            f"/v1/users/{user_id}/preferences",
            json={"product_updates": subscribed},
            headers=auth,
        )
        assert answer.status_code == 200
    assert agreeing() == before + 1
    events = client.get(f"/v1/users/{user_id}/consent", headers=auth).json()
    assert [event["action"] for event in events] == ["subscribed", "unsubscribed"]
    for event in events:
        assert event["category_version"] == CATEGORIES["product_updates"].version
        assert event["category_wording"] == CATEGORIES["product_updates"].description
    exported = client.get(f"/v1/users/{user_id}/export", headers=auth).json()
    assert exported["consent_history"][0]["category_version"] == events[0]["category_version"]


def test_broker_messages_and_logs_hold_no_address_token_or_body(
    stack: Stack, client: TestClient, auth: dict[str, str], web_server: Any
) -> None:
    user_id, address = person(client, auth)
    marker = f"Body-{uuid.uuid4().hex[:8]}"
    stack.worker.stop()
    queued = send(client, auth, user_id, "admin_notice", message=marker)
    broker = redis.Redis.from_url(stack.settings.broker_url)

    def queued_now() -> bytes:
        return b"".join(
            item
            for queue in ("essential", "bulk", "periodic")
            for item in broker.lrange(queue, 0, -1)
        )

    # The web publishes off the request path (a publisher thread): wait for it to land.
    raw = wait_until(
        lambda: queued.encode() in (now := queued_now()) and now, 10, "the message in the broker"
    )
    broker.close()
    assert queued.encode() in raw  # the message is there, carrying the id
    assert (
        address.encode() not in raw and marker.encode() not in raw and user_id.encode() not in raw
    )
    stack.worker.start()
    wait_for_status(stack, queued, "sent")
    product = send(client, auth, user_id, "product_update")
    wait_for_status(stack, product, "sent")
    content = stack.smtp.handler.messages_to(address)[-1].content
    token_path = (
        content.split(b"List-Unsubscribe: <https://notify.example.com")[1].split(b">")[0].decode()
    )
    import urllib.request

    with urllib.request.urlopen(f"{web_server.base_url}{token_path}", timeout=10) as page:
        assert page.status == 200
    logs = stack.worker.log_text() + web_server.log_path.read_text()
    assert address not in logs and marker not in logs
    assert token_path.split("/")[-1] not in logs
    assert (
        f"{address[0]}***@example.com" in stack.worker.log_text()
    )  # masked form is what is logged


def test_an_import_that_changes_an_address_takes_the_suppression_along_and_details_are_masked(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = person(client, auth)
    report = {"email": address, "type": "complaint", "detail": f"ARF report about <{address}>"}
    client.post("/v1/suppressions/reports", json=report, headers=auth)
    new_address = f"moved-{uuid.uuid4().hex[:8]}@example.com"
    csv = f"user_id,email\n{user_id},{new_address}\n".encode()
    client.post("/v1/users/import", content=csv, headers={**auth, "Content-Type": "text/csv"})
    row = wait_for_status(stack, send(client, auth, user_id, "product_update"), "suppressed")
    assert row.reason == "complained"
    assert address not in every_text_in_the_database(stack)
    assert f"{address[0]}***@example.com" in every_text_in_the_database(stack)


def test_nul_characters_and_huge_ids_get_a_4xx_not_a_500(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    assert client.get("/v1/notifications/a%00b", headers=auth).status_code in (404, 422)
    assert (
        client.put("/v1/users/a%00b", json={"email": "x@example.com"}, headers=auth).status_code
        == 422
    )
    assert client.get("/v1/campaigns/99999999999999999999", headers=auth).status_code == 422
    bad = {"name": "n\u0000", "template": "product_update", "data": sample_data("product_update")}
    assert client.post("/v1/campaigns", json=bad, headers=auth).status_code == 422
    far = {**bad, "name": "n", "send_at": "0001-01-01T00:00:00+14:00"}
    assert client.post("/v1/campaigns", json=far, headers=auth).status_code == 422
    assert client.get("/v1/stats?from=9999-12-01&to=9999-12-31", headers=auth).status_code == 422


def test_a_person_stored_under_a_missing_data_key_gets_a_503_and_can_still_be_erased(
    stack: Stack, client: TestClient, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    from notify.message.tokens import preferences_token
    from notify.models import ConsentEvent, Suppression
    from notify.people.suppressions import address_hash
    from tests.domain.people import under_another_key

    user_id, address = person(client, auth)
    with stack.sessions.begin() as session:
        session.execute(
            update(Recipient)
            .where(Recipient.user_id == user_id)
            .values(email=under_another_key(address))
        )
        recipient_id, public_id = session.execute(
            select(Recipient.id, Recipient.public_id).where(Recipient.user_id == user_id)
        ).one()
    try:
        exported = client.get(f"/v1/users/{user_id}/export", headers=auth)
        assert exported.status_code == 503, exported.text
        assert exported.headers["Retry-After"].isdigit()
        assert "NOTIFY_DATA_KEYS" in exported.json()["detail"]
        link = preferences_token(stack.settings.secret_key_list, str(public_id))
        page = client.get(f"/preferences/{link}")
        assert page.status_code == 503 and page.headers["Retry-After"].isdigit()
        assert "text/html" in page.headers["content-type"]
        assert "data key" not in page.text  # a recipient is not told how the service is run
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "a data key is missing" in logged and address not in logged
        assert link not in logged and "Traceback" not in logged
    finally:  # erasure reads nothing encrypted, so it also leaves no row a test cannot read
        assert client.delete(f"/v1/users/{user_id}", headers=auth).status_code == 204
    with stack.sessions() as session:
        erased = session.get_one(Recipient, recipient_id)
        assert erased.erased_at is not None and erased.email is None
        listed = session.scalar(
            select(Suppression.reason).where(
                Suppression.address_hash == address_hash(stack.settings.hash_key, address)
            )
        )
        assert listed == "erased"
        actions = session.scalars(
            select(ConsentEvent.action).where(ConsentEvent.recipient_id == recipient_id)
        ).all()
        assert "suppressed:erased" in actions and "erased" in actions
