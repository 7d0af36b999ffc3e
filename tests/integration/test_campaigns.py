"""Campaigns end to end: import, schedule, the dispatcher in beat, batches on a real worker
process, what the SMTP server received. Each test marks its users with a locale of its own and
targets only that locale, so tests sharing the database never mail each other's users."""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from notify.campaigns import lifecycle as campaigns
from notify.campaigns import planning
from notify.campaigns.batches import group_size
from notify.models import Campaign, ConsentEvent, Notification, Recipient
from notify.web.app import create_app
from tests.support.services import ROOT, WorkerProcess, wait_until
from tests.support.stack import Stack, ensure_worker, make_key, sample_data

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class On:
    """One database engine's stack, with an in-process API client and a key for it."""

    stack: Stack
    client: TestClient
    auth: dict[str, str]


@pytest.fixture(scope="module")
def sqlite_client(sqlite_stack: Stack) -> Iterator[TestClient]:
    app = create_app(sqlite_stack.settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(params=["postgresql", "sqlite"])
def on(request: pytest.FixtureRequest) -> On:
    """The campaign life cycle runs on PostgreSQL and on the embedded default (SQLite and the
    SQL broker), which is what `make run` gives a marketer trying their first campaign."""
    if request.param == "postgresql":
        names = ("stack", "client", "auth")
        stack, client, auth = (request.getfixturevalue(name) for name in names)
        return On(stack, client, auth)
    stack = request.getfixturevalue("sqlite_stack")
    ensure_worker(stack)
    key = make_key(stack.sessions)
    return On(stack, request.getfixturevalue("sqlite_client"), {"Authorization": f"Bearer {key}"})


def tag() -> str:
    return f"en-t{uuid.uuid4().hex[:7]}"


def import_users(
    client: TestClient, auth: dict[str, str], locale: str, count: int, zone: str = ""
) -> list[str]:
    lines = ["user_id,email,locale,timezone"]
    addresses = []
    for index in range(count):
        address = f"{locale}-{index}@example.com"
        addresses.append(address)
        lines.append(f"{locale}-{index},{address},{locale},{zone}")
    response = client.post(
        "/v1/users/import",
        content="\n".join(lines).encode(),
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == count
    return addresses


def create(client: TestClient, auth: dict[str, str], locale: str, **extra: Any) -> int:
    body = {
        "name": f"news {locale}",
        "template": "product_update",
        "data": sample_data("product_update"),
        "audience": {"locales": [locale]},
        **extra,
    }
    response = client.post("/v1/campaigns", json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "draft"
    return int(response.json()["id"])


def status(client: TestClient, auth: dict[str, str], campaign_id: int) -> dict[str, Any]:
    response = client.get(f"/v1/campaigns/{campaign_id}", headers=auth)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def wait_status(
    client: TestClient, auth: dict[str, str], campaign_id: int, wanted: str, timeout: float = 90
) -> dict[str, Any]:
    result: dict[str, Any] = wait_until(
        lambda: (state := status(client, auth, campaign_id))["status"] == wanted and state,
        timeout,
        f"campaign {campaign_id} to be {wanted}",
    )
    return result


def received_per_address(stack: Stack, addresses: list[str]) -> Counter[str]:
    wanted = set(addresses)
    with stack.smtp.handler.lock:
        return Counter(a for m in stack.smtp.handler.received for a in m.rcpt_tos if a in wanted)


def test_a_recipient_no_data_key_decrypts_is_retried_then_failed_and_the_campaign_completes(
    on: On,
) -> None:
    from sqlalchemy import Text, type_coerce

    from notify import crypto
    from notify.delivery.outcomes import UNDECRYPTABLE

    stack, client, auth = on.stack, on.client, on.auth
    locale = tag()
    addresses = import_users(client, auth, locale, 3)
    sealed = crypto.keyring(["a-key-the-worker-never-had"]).encrypt(b"Ada").decode()
    lost = Recipient.user_id == f"{locale}-1"
    with stack.sessions.begin() as session:
        session.execute(update(Recipient).where(lost).values(first_name=type_coerce(sealed, Text)))
    try:
        campaign_id = create(client, auth, locale)
        client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
        done = wait_status(client, auth, campaign_id, "completed")
        assert (done["counts"]["sent"], done["counts"]["failed"]) == (2, 1)
        assert received_per_address(stack, addresses) == Counter([addresses[0], addresses[2]])
        with stack.sessions() as session:
            row = session.execute(
                select(Notification.reason, Notification.attempts)
                .join(Recipient, Recipient.id == Notification.recipient_id)
                .where(lost, Notification.campaign_id == campaign_id)
            ).one()
        attempts = stack.settings.max_attempts
        assert tuple(row) == (f"gave up after {attempts} attempts: {UNDECRYPTABLE}", attempts)
    finally:  # no later test may meet a person it cannot read
        with stack.sessions.begin() as session:
            session.execute(update(Recipient).where(lost).values(first_name=None))


def test_a_campaign_reaches_each_subscribed_user_exactly_once_and_nobody_else(on: On) -> None:
    stack, client, auth = on.stack, on.client, on.auth
    locale = tag()
    addresses = import_users(client, auth, locale, 2000)
    unsubscribed = addresses[0:2000:10]  # 200 people
    suppressed = addresses[5:2000:20]  # 100 people
    for address in unsubscribed:
        user_id = address.split("@")[0]
        answer = client.patch(
            f"/v1/users/{user_id}/preferences", json={"product_updates": False}, headers=auth
        )
        assert answer.status_code == 200
    for address in suppressed:
        assert (
            client.post("/v1/suppressions", json={"email": address}, headers=auth).status_code
            == 201
        )
    campaign_id = create(client, auth, locale)
    scheduled = client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    assert scheduled.status_code == 200 and scheduled.json()["status"] == "scheduled"

    done = wait_status(client, auth, campaign_id, "completed", timeout=120)
    expected = set(addresses) - set(unsubscribed) - set(suppressed)
    got = received_per_address(stack, addresses)
    assert set(got) == expected
    assert max(got.values()) == 1
    assert done["counts"]["sent"] == len(expected)
    assert done["counts"]["pending"] == 0 and done["counts"]["failed"] == 0
    one = next(m for m in stack.smtp.handler.received if m.rcpt_tos[0] in expected)
    assert b"List-Unsubscribe: <https://notify.example.com/u/" in one.content


def test_an_unsubscribe_during_the_campaign_stops_the_rest_of_it_for_that_person(on: On) -> None:
    stack, client, auth = on.stack, on.client, on.auth
    locale = tag()
    addresses = import_users(client, auth, locale, 60)  # one batch, sent in order, 10 a second
    campaign_id = create(client, auth, locale, rate_limit=10)
    client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    wait_until(lambda: status(client, auth, campaign_id)["counts"]["sent"] >= 5, 30, "first sends")
    last = addresses[-1].split("@")[0]
    client.patch(f"/v1/users/{last}/preferences", json={"product_updates": False}, headers=auth)
    wait_status(client, auth, campaign_id, "completed")
    assert addresses[-1] not in received_per_address(stack, addresses)
    with stack.sessions() as session:
        held = session.scalar(
            select(Notification.id)
            .join(Recipient, Recipient.id == Notification.recipient_id)
            .where(Notification.campaign_id == campaign_id, Recipient.user_id == last)
        )
    explained = client.get(f"/v1/notifications/{held}/explain", headers=auth).json()
    assert (explained["status"], explained["reason"]) == ("suppressed", "unsubscribed")
    decision = explained["decision"]  # recorded by the claim that found the opt-out
    assert (decision["blocked"], decision["rule"]) == ("unsubscribed", "stored_choice")
    assert decision["campaign"]["id"] == campaign_id
    assert decision["choice"]["consent_event"]["route"] == "api"


def in_flight_after_a_stop(stack: Stack, per_second: float) -> int:
    """What may arrive between counting and the end of a pause or cancel: per running batch
    (one per pool process, 2), the rest of the group it was sending at the count and one more
    group it may claim before the pause lands."""
    return 2 * 2 * group_size(stack.settings.campaign_commit_every, per_second)


def test_pause_stops_sending_and_resume_finishes_with_no_duplicate_and_no_skip(on: On) -> None:
    stack, client, auth = on.stack, on.client, on.auth
    locale = tag()
    addresses = import_users(client, auth, locale, 150)
    campaign_id = create(client, auth, locale, rate_limit=30)
    client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    wait_until(lambda: status(client, auth, campaign_id)["counts"]["sent"] >= 20, 30, "20 sends")

    before = sum(received_per_address(stack, addresses).values())
    paused = client.post(f"/v1/campaigns/{campaign_id}/pause", headers=auth)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    time.sleep(1.5)  # the groups claimed before the pause may still land
    at_pause = sum(received_per_address(stack, addresses).values())
    assert at_pause - before <= in_flight_after_a_stop(stack, 30)
    time.sleep(3)
    assert sum(received_per_address(stack, addresses).values()) == at_pause
    assert at_pause < len(addresses)
    assert client.post(f"/v1/campaigns/{campaign_id}/pause", headers=auth).status_code == 409

    assert (
        client.post(f"/v1/campaigns/{campaign_id}/resume", headers=auth).json()["status"]
        == "running"
    )
    wait_status(client, auth, campaign_id, "completed")
    got = received_per_address(stack, addresses)
    assert set(got) == set(addresses)
    assert max(got.values()) == 1


def test_cancel_marks_what_is_left_cancelled_and_sends_nothing_more(on: On) -> None:
    stack, client, auth = on.stack, on.client, on.auth
    locale = tag()
    addresses = import_users(client, auth, locale, 150)
    campaign_id = create(client, auth, locale, rate_limit=30)
    client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    wait_until(lambda: status(client, auth, campaign_id)["counts"]["sent"] >= 10, 30, "10 sends")

    before = sum(received_per_address(stack, addresses).values())
    cancelled = client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=auth).json()
    assert cancelled["status"] == "cancelled"
    time.sleep(1.5)  # the groups claimed before the cancel may still land
    at_cancel = sum(received_per_address(stack, addresses).values())
    assert at_cancel - before <= in_flight_after_a_stop(stack, 30)
    time.sleep(3)
    final = status(client, auth, campaign_id)
    assert sum(received_per_address(stack, addresses).values()) == at_cancel
    counts = final["counts"]
    assert counts["pending"] == 0
    assert counts["cancelled"] > 0
    assert counts["sent"] + counts["cancelled"] == len(addresses)
    assert counts["sent"] == at_cancel
    assert client.post(f"/v1/campaigns/{campaign_id}/resume", headers=auth).status_code == 409


def test_a_worker_killed_mid_batch_finishes_the_campaign_with_no_one_skipped_and_one_group_twice(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    locale = tag()
    addresses = import_users(client, auth, locale, 120)
    campaign_id = create(client, auth, locale, rate_limit=25)
    client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    wait_until(lambda: sum(received_per_address(stack, addresses).values()) >= 15, 30, "15 sends")
    stack.worker.kill()
    stack.worker.start()

    wait_status(client, auth, campaign_id, "completed", timeout=120)
    got = received_per_address(stack, addresses)
    assert set(got) == set(addresses), "someone was skipped"
    # At most one claimed group per batch being sent, i.e. per pool process (2).
    group = group_size(stack.settings.campaign_commit_every, 25)
    duplicates = [address for address, count in got.items() if count > 1]
    assert max(got.values()) <= 2
    assert len(duplicates) <= 2 * group, f"duplicates: {duplicates}"


def test_two_beat_processes_at_once_start_a_campaign_once(
    stack: Stack, client: TestClient, auth: dict[str, str], tmp_path: Any
) -> None:
    locale = tag()
    addresses = import_users(client, auth, locale, 300)
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "beat",
            "--loglevel",
            "WARNING",
            "--schedule",
            str(tmp_path / "second-beat"),
        ],
        cwd=ROOT,
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(2)
        campaign_id = create(client, auth, locale)
        client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
        wait_status(client, auth, campaign_id, "completed")
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=20)
    got = received_per_address(stack, addresses)
    assert set(got) == set(addresses)
    assert max(got.values()) == 1


def test_concurrent_dispatchers_claim_a_due_campaign_once(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    locale = tag()
    import_users(client, auth, locale, 5)
    campaign_id = create(client, auth, locale)
    stack.worker.stop()  # only the two threads below may start it
    with stack.sessions.begin() as session:
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(status="scheduled", start_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    barrier = threading.Barrier(2)
    started: list[list[int]] = []

    def dispatcher() -> None:
        barrier.wait()
        with stack.sessions.begin() as session:
            started.append(campaigns.start_due(session, now=datetime.now(UTC)))

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claims = [ids.count(campaign_id) for ids in started]
    assert sorted(claims) == [0, 1]


def test_a_campaign_that_became_due_long_ago_waits_for_confirmation(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    locale = tag()
    addresses = import_users(client, auth, locale, 10)
    campaign_id = create(client, auth, locale)
    with stack.sessions.begin() as session:  # as if the service had been down for two hours
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(status="scheduled", start_at=datetime.now(UTC) - timedelta(hours=2))
        )
    held = wait_status(client, auth, campaign_id, "needs_confirmation", timeout=30)
    assert "late" in held["status_reason"]
    time.sleep(2)
    assert received_per_address(stack, addresses) == Counter()

    assert client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth).status_code == 200
    wait_status(client, auth, campaign_id, "completed")
    assert set(received_per_address(stack, addresses)) == set(addresses)


def test_send_at_local_sends_at_ten_in_each_recipients_own_time_zone(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    """With a frozen clock: the planner and the batch sender are driven directly."""
    from notify.campaigns.batches import send_batch
    from notify.campaigns.rate_limit import RateLimiter
    from notify.delivery.transport import SmtpTransport

    locale = tag()
    zones = {"Pacific/Auckland": [], "Europe/London": [], "America/New_York": []}
    for zone in zones:
        suffix = zone.split("/")[1][:4].lower().replace("_", "")
        zones[zone] = import_users(client, auth, f"{locale}-{suffix}", 4, zone)
    campaign_id = create(client, auth, locale, send_at_local="2026-12-01T10:00")
    stack.worker.stop()  # the frozen clock drives everything below
    frozen = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    settings = stack.settings
    with stack.sessions.begin() as session:
        campaign = campaigns.schedule(
            session,
            campaign_id,
            defaults=settings.default_subscriptions,
            default_timezone="UTC",
            now=frozen,
        )
        assert campaign.start_at == datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # 10:00 in Auckland
        assert campaigns.start_due(session, now=frozen) == []
        assert campaign_id in campaigns.start_due(session, now=campaign.start_at)
    with stack.sessions.begin() as session:
        batch = planning.plan_next_page(
            session,
            campaign_id,
            page_size=100,
            defaults=frozenset({"product_updates"}),
            default_timezone="UTC",
            now=frozen,
        )
        assert batch is not None and batch.size == 12
    with stack.sessions() as session:
        due = {
            n.recipient_id: n.next_attempt_at
            for n in session.scalars(
                select(Notification).where(Notification.campaign_id == campaign_id)
            )
        }
        assert sorted(set(due.values())) == [
            datetime(2026, 11, 30, 21, 0, tzinfo=UTC),  # Auckland, UTC+13
            datetime(2026, 12, 1, 10, 0, tzinfo=UTC),  # London, UTC+0
            datetime(2026, 12, 1, 15, 0, tzinfo=UTC),  # New York, UTC-5
        ]

    transport = SmtpTransport(settings.smtp, timeout=5)
    limiter = RateLimiter("memory://")
    delivered: dict[str, int] = {}
    for moment, expected in (
        (datetime(2026, 11, 30, 21, 0, 30, tzinfo=UTC), zones["Pacific/Auckland"]),
        (datetime(2026, 12, 1, 10, 0, 30, tzinfo=UTC), zones["Europe/London"]),
        (datetime(2026, 12, 1, 15, 0, 30, tzinfo=UTC), zones["America/New_York"]),
    ):
        report = send_batch(
            stack.sessions,
            transport,
            settings,
            batch.id,
            limiter=limiter,
            retry_delay=lambda _: 1.0,
            clock=lambda m=moment: m,
        )
        assert report.sent == 4, (moment, report)
        got = received_per_address(stack, [a for addrs in zones.values() for a in addrs])
        newly = {a for a in got if a not in delivered}
        assert newly == set(expected), moment
        delivered.update(got)
    transport.close()


def test_a_security_alert_is_not_delayed_by_a_running_fifty_thousand_campaign(
    stack: Stack, client: TestClient, auth: dict[str, str], tmp_path: Any
) -> None:
    locale = tag()
    import_users(client, auth, locale, 50_000)
    stack.worker.stop()
    bulk = WorkerProcess(stack.env, tmp_path / "bulk.log", queues="bulk,periodic")
    essential = WorkerProcess(stack.env, tmp_path / "essential.log", queues="essential")
    bulk.start()
    essential.start()
    try:
        campaign_id = create(client, auth, locale)
        client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
        wait_until(
            lambda: status(client, auth, campaign_id)["counts"]["sent"] >= 500,
            60,
            "the campaign to be sending",
        )
        alert_to = f"urgent-{uuid.uuid4().hex[:8]}@example.com"
        body = {
            "template": "security_alert",
            "user_id": f"u-{alert_to}",
            "email": alert_to,
            "data": sample_data("security_alert"),
        }
        received = stack.smtp.handler.received
        before, posted = len(received), time.monotonic()
        assert client.post("/v1/notifications", json=body, headers=auth).status_code == 202
        wait_until(
            lambda: stack.smtp.handler.messages_to(alert_to),
            30,
            "the security alert",
            interval=0.02,
        )
        latency = time.monotonic() - posted
        running = status(client, auth, campaign_id)
        assert running["status"] == "running"  # the alert went out while the campaign ran
        assert running["counts"]["sent"] < 50_000
        # Measured in the campaign's own messages, not in seconds, so that a slow machine slows
        # both sides alike: behind the campaign's backlog the alert would wait for tens of
        # thousands; on its own lane, for the few the bulk worker sends meanwhile.
        with stack.smtp.handler.lock:
            arrived = next(n for n, got in enumerate(received) if alert_to in got.rcpt_tos)
        ahead = arrived - before
        assert ahead < 1_000, f"{ahead} campaign messages went before the alert ({latency:.2f}s)"
        # Cancelled while its batches run: the tests after this one must not wait behind it.
        assert client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=auth).status_code == 200
    finally:
        bulk.stop()
        essential.stop()


def test_a_campaign_gives_way_while_essential_mail_waits_and_still_completes(
    stack: Stack, client: TestClient, auth: dict[str, str], tmp_path: Any
) -> None:
    """With alerts waiting on the broker and no essential worker to take them, a bulk-only
    worker's campaign waits up to NOTIFY_CAMPAIGN_YIELD_SECONDS before each group, then goes on:
    it completes, and the alerts go once an essential worker starts."""
    locale = tag()
    addresses = import_users(client, auth, locale, 60)
    stack.worker.stop()
    env = {**stack.env, "NOTIFY_CAMPAIGN_YIELD_SECONDS": "0.3"}
    bulk = WorkerProcess(env, tmp_path / "bulk.log", queues="bulk,periodic")
    essential = WorkerProcess(stack.env, tmp_path / "essential.log", queues="essential")
    bulk.start()
    try:
        alerts = [f"waiting-{uuid.uuid4().hex[:8]}@example.com" for _ in range(2)]
        for address in alerts:
            body = {
                "template": "security_alert",
                "user_id": f"u-{address}",
                "email": address,
                "data": sample_data("security_alert"),
            }
            assert client.post("/v1/notifications", json=body, headers=auth).status_code == 202
        campaign_id = create(client, auth, locale)
        client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
        done = wait_status(client, auth, campaign_id, "completed")
        assert done["counts"]["sent"] == len(addresses)
        assert all(len(stack.smtp.handler.messages_to(address)) == 1 for address in addresses)
        assert "gave way to essential mail" in bulk.log_text()
        assert not any(stack.smtp.handler.messages_to(address) for address in alerts)
        essential.start()
        for address in alerts:
            wait_until(lambda a=address: stack.smtp.handler.messages_to(a), 30, "the alert")
    finally:
        bulk.stop()
        essential.stop()


def test_the_rate_limit_holds_across_workers(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    locale = tag()
    import_users(client, auth, locale, 80)
    campaign_id = create(client, auth, locale, rate_limit=20)
    client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    wait_status(client, auth, campaign_id, "completed")
    with stack.sessions() as session:
        times = sorted(
            t
            for t in session.scalars(
                select(Notification.sent_at).where(Notification.campaign_id == campaign_id)
            )
            if t
        )
    assert len(times) == 80
    busiest = max(
        sum(1 for t in times if start <= t < start + timedelta(seconds=1)) for start in times
    )
    assert busiest <= 22  # 20 per second, plus the recording lag of one message per worker


def test_an_import_reports_bad_rows_by_line_keeps_good_ones_and_never_resubscribes(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    locale = tag()
    good = f"{locale}-good"
    client.put(f"/v1/users/{good}", json={"email": f"{good}@example.com"}, headers=auth)
    client.patch(f"/v1/users/{good}/preferences", json={"product_updates": False}, headers=auth)
    csv = "\n".join(
        [
            "user_id,email,locale,timezone",
            f"{good},{good}-new@example.com,{locale},Europe/Paris",
            f"{locale}-a,not-an-email,{locale},",
            f"{locale}-b,b@example.com,{locale},Mars/Olympus",
            f",c@example.com,{locale},",
            f"{locale}-d,d@example.com,{locale},UTC,extra",
            f"{locale}-e,e@example.com,{locale},",
        ]
    )
    answer = client.post(
        "/v1/users/import", content=csv.encode(), headers={**auth, "Content-Type": "text/csv"}
    )
    assert answer.status_code == 200
    result = answer.json()
    assert result["imported"] == 2 and result["rejected"] == 4
    assert [e["line"] for e in result["errors"]] == [3, 4, 5, 6]
    assert "email" in result["errors"][0]["error"] and "timezone" in result["errors"][1]["error"]
    user = client.get(f"/v1/users/{good}", headers=auth).json()
    assert user["email"] == f"{good}-new@example.com" and user["timezone"] == "Europe/Paris"
    prefs = client.get(f"/v1/users/{good}/preferences", headers=auth).json()
    assert prefs["categories"]["product_updates"]["subscribed"] is False

    jsonl = b'{"user_id": "%s-j", "email": "j@example.com"}\n[1, 2]\n{broken\n' % locale.encode()
    answer = client.post(
        "/v1/users/import", content=jsonl, headers={**auth, "Content-Type": "application/x-ndjson"}
    )
    assert answer.json()["imported"] == 1 and [e["line"] for e in answer.json()["errors"]] == [2, 3]
    wrong_type = client.post(
        "/v1/users/import", content=b"x", headers={**auth, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415


def test_bad_campaign_requests_are_refused_clearly(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    base = {"name": "x", "template": "product_update", "data": sample_data("product_update")}
    cases = [
        (
            {**base, "template": "security_alert", "data": sample_data("security_alert")},
            422,
            "template",
        ),
        ({**base, "send_at": "2026-12-01T10:00:00"}, 422, "send_at"),
        ({**base, "send_at_local": "2026-12-01T10:00:00+02:00"}, 422, "send_at_local"),
        (
            {**base, "send_at": "2026-12-01T10:00:00Z", "send_at_local": "2026-12-01T10:00"},
            422,
            "send_at_local",
        ),
        ({**base, "data": {}}, 422, "data"),
        ({**base, "template": "nope"}, 404, None),
        ({**base, "rate_limit": -1}, 422, "rate_limit"),
    ]
    for body, code, field in cases:
        response = client.post("/v1/campaigns", json=body, headers=auth)
        assert response.status_code == code, (body, response.text)
        if field:
            assert response.json()["detail"][0]["loc"][1] == field
    assert client.get("/v1/campaigns/999999", headers=auth).status_code == 404
    assert client.post("/v1/campaigns/999999/pause", headers=auth).status_code == 404


def test_preview_renders_for_a_named_user_with_headers_and_sends_nothing(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    locale = tag()
    addresses = import_users(client, auth, locale, 1)
    campaign_id = create(client, auth, locale)
    user_id = addresses[0].split("@")[0]
    preview = client.post(
        f"/v1/campaigns/{campaign_id}/preview", json={"user_id": user_id}, headers=auth
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert shown["headers"]["To"] == f"{addresses[0][0]}***@example.com"  # never the address
    link = shown["headers"]["List-Unsubscribe"]
    assert link.startswith("<https://notify.example.com/u/")
    assert (
        client.post(link.strip("<>").removeprefix("https://notify.example.com")).status_code == 404
    )
    assert shown["subject"] == sample_data("product_update")["headline"]
    assert "Unsubscribe" in shown["text"]
    sample = client.post(f"/v1/campaigns/{campaign_id}/preview", headers=auth)
    assert sample.status_code == 200 and sample.json()["headers"]["To"] == "recipient@example.com"
    time.sleep(1)
    assert received_per_address(stack, addresses) == Counter()
    assert status(client, auth, campaign_id)["counts"]["pending"] == 0


def test_a_campaign_greets_each_person_by_their_own_name_and_the_preview_names_who_falls_back(
    on: On,
) -> None:
    stack, client, auth = on.stack, on.client, on.auth
    locale = tag()
    people = {  # user id -> (address, first name in the file, plan attribute in the file)
        f"{locale}-ada": (f"{locale}-ada@example.com", "Ada", "pro"),
        f"{locale}-zoe": (f"{locale}-zoe@example.com", "Zoë", ""),
        f"{locale}-anon": (f"{locale}-anon@example.com", "", "free"),
    }
    lines = ["user_id,email,locale,first_name,plan"] + [
        f"{user_id},{address},{locale},{first_name},{plan}"
        for user_id, (address, first_name, plan) in people.items()
    ]
    imported = client.post(
        "/v1/users/import",
        content="\n".join(lines).encode(),
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200 and imported.json()["imported"] == 3, imported.text
    assert client.get(f"/v1/users/{locale}-ada", headers=auth).json()["attributes"] == {
        "plan": "pro"
    }
    data = sample_data("product_update")
    assert "first_name" not in data  # the campaign carries only what is the same for everyone
    campaign_id = create(client, auth, locale, data=data)

    preview = client.post(
        f"/v1/campaigns/{campaign_id}/preview", json={"user_id": f"{locale}-anon"}, headers=auth
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert "Hello there," in shown["text"]
    assert shown["fallbacks"] == ["first_name"]
    assert shown["audience_fallbacks"]["lacking"] == {"first_name": 1}
    assert shown["audience_fallbacks"]["examples"] == {"first_name": [f"{locale}-anon"]}
    assert shown["audience_fallbacks"]["scanned"] == 3
    ada = client.post(
        f"/v1/campaigns/{campaign_id}/preview", json={"user_id": f"{locale}-ada"}, headers=auth
    ).json()
    assert "Hello Ada," in ada["text"] and ada["fallbacks"] == []
    campaigns_only = {"Authorization": f"Bearer {make_key(stack.sessions, 'campaigns:write')}"}
    hidden = client.post(
        f"/v1/campaigns/{campaign_id}/preview",
        json={"user_id": f"{locale}-ada"},
        headers=campaigns_only,
    ).json()
    assert "Hello there," in hidden["text"]  # a key that may not read people sees no name

    client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    wait_status(client, auth, campaign_id, "completed")
    greetings = {}
    with stack.smtp.handler.lock:
        for message in stack.smtp.handler.received:
            for user_id, (address, _, _) in people.items():
                if address in message.rcpt_tos:
                    parsed = email.message_from_bytes(message.content, policy=policy.default)
                    body = parsed.get_body(("plain",))
                    assert body is not None
                    greetings[user_id] = body.get_content().splitlines()[0]
    assert greetings == {
        f"{locale}-ada": "Hello Ada,",
        f"{locale}-zoe": "Hello Zoë,",
        f"{locale}-anon": "Hello there,",
    }


def test_a_markdown_campaign_is_personalised_sanitised_and_keeps_the_layout(on: On) -> None:
    stack, client, auth = on.stack, on.client, on.auth
    locale = tag()
    people = {f"{locale}-ada": "Ada", f"{locale}-grace": "Grace"}
    for user_id, first_name in people.items():
        answer = client.put(
            f"/v1/users/{user_id}",
            json={"email": f"{user_id}@example.com", "locale": locale, "first_name": first_name},
            headers=auth,
        )
        assert answer.status_code == 201, answer.text
    content = {
        "subject": "{{ recipient.first_name }}, dark mode is here",
        "preheader": "Switch any page to dark mode",
        "body": "# Dark mode\n\nHello {{ recipient.first_name | default('there', true) }},\n\n"
        "<script>alert(1)</script> [Try it](https://example.com/dark) "
        "[tracker](http://example.com/t)",
    }
    refused = client.post(
        "/v1/campaigns",
        json={"name": "bad", "template": "markdown_update", "data": {**content, "body": "{{ x"}},
        headers=auth,
    )
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "body"
    campaign_id = create(client, auth, locale, template="markdown_update", data=content)
    for user_id, first_name in people.items():
        preview = client.post(
            f"/v1/campaigns/{campaign_id}/preview", json={"user_id": user_id}, headers=auth
        ).json()
        assert preview["subject"] == f"{first_name}, dark mode is here"
        assert f"Hello {first_name}," in preview["text"]
        assert preview["audience_fallbacks"]["lacking"] == {"first_name": 0}

    client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    wait_status(client, auth, campaign_id, "completed")
    seen = {}
    with stack.smtp.handler.lock:
        for message in stack.smtp.handler.received:
            for user_id in people:
                if f"{user_id}@example.com" in message.rcpt_tos:
                    seen[user_id] = email.message_from_bytes(message.content, policy=policy.default)
    assert set(seen) == set(people)
    for user_id, parsed in seen.items():
        first_name = people[user_id]
        assert parsed["Subject"] == f"{first_name}, dark mode is here"
        html_part, text_part = parsed.get_body(("html",)), parsed.get_body(("plain",))
        assert html_part is not None and text_part is not None
        html, text = html_part.get_content(), text_part.get_content()
        assert f"Hello {first_name}," in html and f"Hello {first_name}," in text
        assert "<script" not in html and "http://example.com/t" not in html
        assert 'href="https://example.com/dark"' in html
        unsubscribe = str(parsed["List-Unsubscribe"]).strip("<>")
        assert unsubscribe in html and unsubscribe in text  # the layout's footer is kept

    # Attribution: a one-click unsubscribe from this campaign's message counts for it.
    unsubscribe = str(seen[f"{locale}-ada"]["List-Unsubscribe"]).strip("<>")
    pressed = client.post(
        unsubscribe.removeprefix(stack.settings.public_url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert pressed.status_code == 200
    assert status(client, auth, campaign_id)["unsubscribes"] == 1
    with stack.sessions() as session:
        event = session.scalars(
            select(ConsentEvent).where(ConsentEvent.campaign_id == campaign_id)
        ).one()
    assert (event.action, event.source) == ("unsubscribed", "one_click")
