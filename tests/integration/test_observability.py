"""What an operator sees, on the real stack: the worker's and the web's /metrics after real
sends (PostgreSQL, Redis, a Celery worker process, the SMTP server), counts that survive a
pool process being replaced and add up across uvicorn workers, the database gauges, JSON log
lines carrying the API request's id, and /readyz."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import ROOT, WebProcess, WorkerProcess, free_port, wait_until
from tests.support.stack import Stack, make_key, sample_data

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[str, Samples]:
    answer = httpx.get(url, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return answer.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class ObservedWorker:
    """A worker on every lane with a metrics port of its own and JSON logs."""

    def __init__(self, stack: Stack, folder: Path, *, beat: bool = False) -> None:
        self.port = free_port()
        env = {
            **stack.env,
            "NOTIFY_WORKER_METRICS_PORT": str(self.port),
            "NOTIFY_LOG_FORMAT": "json",
        }
        self.process = WorkerProcess(env, folder / "worker.log", beat=beat)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def json_lines(self) -> list[dict[str, object]]:
        lines = []
        for line in self.process.log_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


def _observed(stack: Stack, folder: Path, *, beat: bool) -> Iterator[ObservedWorker]:
    stack.worker.stop()  # the stack's worker would take half the messages
    worker = ObservedWorker(stack, folder, beat=beat)
    worker.process.start()
    wait_until(lambda: _answers(worker.metrics_url), 20, "the worker's metrics port")
    yield worker
    worker.process.stop()


@pytest.fixture
def observed(stack: Stack, tmp_path: Path) -> Iterator[ObservedWorker]:
    """Without beat: its only children are the two pool processes."""
    yield from _observed(stack, tmp_path, beat=False)


@pytest.fixture
def observed_with_beat(stack: Stack, tmp_path: Path) -> Iterator[ObservedWorker]:
    """With beat, which starts campaigns."""
    yield from _observed(stack, tmp_path, beat=True)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _alert(address: str) -> dict[str, object]:
    return {
        "template": "security_alert",
        "user_id": f"u-{address}",
        "email": address,
        "data": sample_data("security_alert"),
    }


def test_counters_move_by_exactly_the_messages_sent_and_carry_no_personal_data(
    stack: Stack, web_server: WebProcess, observed: ObservedWorker
) -> None:
    base = web_server.base_url
    auth = {"Authorization": f"Bearer {make_key(stack.sessions)}"}
    _, worker_before = scrape(observed.metrics_url)
    _, web_before = scrape(f"{base}/metrics")
    addresses = [f"metrics-{uuid.uuid4().hex[:8]}@example.com" for _ in range(3)]
    refused = f"refused-{uuid.uuid4().hex[:8]}@example.com"
    stack.smtp.handler.script[refused] = ["550 5.1.1 no such user"]
    for address in [*addresses, refused]:
        answer = httpx.post(f"{base}/v1/notifications", json=_alert(address), headers=auth)
        assert answer.status_code == 202
    for address in addresses:
        wait_until(lambda a=address: stack.smtp.handler.messages_to(a), 30, "the alert")

    def settled() -> Samples | None:
        """Once the refusal and the three acceptances are recorded (and so counted)."""
        _, now = scrape(observed.metrics_url)
        counts = [
            value(
                samples,
                "notify_notifications_total",
                category="security",
                outcome=outcome,
                reason="",
            )
            for samples in (now, worker_before)
            for outcome in ("failed", "sent")
        ]
        failed, sent = counts[0] - counts[2], counts[1] - counts[3]
        return now if failed >= 1 and sent >= 3 else None

    worker_after = wait_until(settled, 30, "the sends and the refusal to be counted")
    text, _ = scrape(observed.metrics_url)
    web_text, web_after = scrape(f"{base}/metrics")

    def moved(after: Samples, before: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    sent = {"category": "security", "outcome": "sent", "reason": ""}
    assert moved(worker_after, worker_before, "notify_notifications_total", **sent) == 3
    assert moved(worker_after, worker_before, "notify_delivery_latency_seconds_count",
                 lane="essential") == 3  # fmt: skip
    assert moved(worker_after, worker_before, "notify_smtp_send_seconds_count") == 4
    assert moved(worker_after, worker_before, "notify_smtp_errors_total", reply_class="5xx") == 1
    tasks = moved(worker_after, worker_before, "notify_tasks_total",
                  task="notify.send_notifications", outcome="success")  # fmt: skip
    assert 1 <= tasks <= 4
    assert value(worker_after, "notify_worker_lanes", lane="essential") == 1
    posted = {"method": "POST", "route": "/v1/notifications", "status": "202"}
    assert moved(web_after, web_before, "notify_http_requests_total", **posted) == 4
    assert moved(web_after, web_before, "notify_http_request_duration_seconds_count",
                 method="POST", route="/v1/notifications") == 4  # fmt: skip
    for scraped in (text, web_text):
        for address in [*addresses, refused]:
            assert address not in scraped and address.split("@")[0] not in scraped
        assert auth["Authorization"].split()[1] not in scraped


def test_a_campaign_is_counted_message_by_message(
    stack: Stack, client: TestClient, auth: dict[str, str], observed_with_beat: ObservedWorker
) -> None:
    observed = observed_with_beat
    from tests.integration.test_campaigns import create, import_users, tag, wait_status

    _, before = scrape(observed.metrics_url)
    locale = tag()
    addresses = import_users(client, auth, locale, 7)
    campaign_id = create(client, auth, locale)
    client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    wait_status(client, auth, campaign_id, "completed")
    assert all(stack.smtp.handler.messages_to(address) for address in addresses)
    _, after = scrape(observed.metrics_url)
    sent = {"category": "product_updates", "outcome": "sent", "reason": ""}
    assert (
        value(after, "notify_campaign_messages_total", outcome="sent")
        - value(before, "notify_campaign_messages_total", outcome="sent")
        == 7
    )
    assert (
        value(after, "notify_notifications_total", **sent)
        - value(before, "notify_notifications_total", **sent)
        == 7
    )
    assert (
        value(after, "notify_smtp_send_seconds_count")
        - value(before, "notify_smtp_send_seconds_count")
        == 7
    )


def test_counts_survive_a_pool_process_being_replaced(
    stack: Stack, client: TestClient, auth: dict[str, str], observed: ObservedWorker
) -> None:
    _, before = scrape(observed.metrics_url)
    addresses = [f"replaced-{uuid.uuid4().hex[:8]}@example.com" for _ in range(2)]
    for address in addresses:
        answer = client.post("/v1/notifications", json=_alert(address), headers=auth)
        assert answer.status_code == 202
    sent = {"category": "security", "outcome": "sent", "reason": ""}

    def counted() -> bool:
        _, now = scrape(observed.metrics_url)
        return (
            value(now, "notify_notifications_total", **sent)
            - value(before, "notify_notifications_total", **sent)
            == 2
        )

    # Both recorded (the relay's acceptance is counted once it is written), then the kill.
    wait_until(counted, 30, "both sends to be recorded")
    assert observed.process.process is not None
    main = observed.process.process.pid
    children = [int(pid) for pid in Path(f"/proc/{main}/task/{main}/children").read_text().split()]
    assert children
    for pid in children:
        os.kill(pid, signal.SIGKILL)  # Celery starts new pool processes in their place

    def replaced() -> bool:
        now = Path(f"/proc/{main}/task/{main}/children").read_text().split()
        return len(now) == len(children) and not set(map(int, now)) & set(children)

    wait_until(replaced, 30, "new pool processes")
    _, after = scrape(observed.metrics_url)
    assert (
        value(after, "notify_notifications_total", **sent)
        - value(before, "notify_notifications_total", **sent)
        == 2
    )


def test_the_request_id_follows_a_notification_into_the_workers_log_line(
    stack: Stack, client: TestClient, auth: dict[str, str], observed: ObservedWorker
) -> None:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    address = f"traced-{uuid.uuid4().hex[:8]}@example.com"
    answer = client.post(
        "/v1/notifications", json=_alert(address), headers={**auth, "X-Request-ID": request_id}
    )
    assert answer.status_code == 202
    assert answer.headers["X-Request-ID"] == request_id
    notification_id = answer.json()["id"]

    def line() -> dict[str, object] | None:
        for entry in observed.json_lines():
            if entry.get("notification_id") == notification_id:
                return entry
        return None

    entry = wait_until(line, 30, "the worker's line about the notification")
    assert entry["request_id"] == request_id
    assert entry["level"] == "info" and "timestamp" in entry
    assert address not in json.dumps(entry)
    assert f"{address[0]}***@example.com" in str(entry["event"])
    # A task's own line is structured too: its name and how long it ran (written once the
    # task has returned, a moment after the line above).
    wait_until(
        lambda: any(
            entry.get("task") == "notify.send_notifications" and "duration_seconds" in entry
            for entry in observed.json_lines()
        ),
        10,
        "the task's own line",
    )
    # An id that is not a plain token is replaced, not echoed.
    odd = client.post(
        "/v1/notifications", json=_alert(address), headers={**auth, "X-Request-ID": "a b;c"}
    )
    assert odd.headers["X-Request-ID"] != "a b;c" and len(odd.headers["X-Request-ID"]) == 32


def test_the_web_adds_up_its_uvicorn_workers_and_reports_the_waiting_mail(
    stack: Stack, tmp_path: Path
) -> None:
    stack.worker.stop()  # nothing takes the alerts: they wait, and the gauges show it
    port = free_port()
    log = (tmp_path / "web.log").open("ab")
    folder = tmp_path / "metrics"  # named here, to see which processes wrote values
    folder.mkdir()
    env = {**stack.env, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    web = subprocess.Popen(
        [sys.executable, "-m", "notify.cli", "web", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def writers() -> set[str]:
        """The processes that have counted an HTTP request (a worker makes its file when it
        starts, before it has served anything)."""
        from prometheus_client.mmap_dict import MmapedDict

        return {
            path.stem.rsplit("_", 1)[-1]
            for path in folder.glob("counter_*.db")
            if any(
                "notify_http_requests" in key
                for key, *_ in MmapedDict.read_all_values_from_file(str(path))
            )
        }

    try:
        wait_until(lambda: _answers(f"{base}/healthz"), 60, "notify web with two workers")
        auth = {"Authorization": f"Bearer {make_key(stack.sessions)}"}
        _, before = scrape(f"{base}/metrics")
        posts = 0
        with httpx.Client() as http:
            # A new connection each, until both workers have served some.
            while posts < 6 or (len(writers()) < 2 and posts < 200):
                address = f"waiting-{uuid.uuid4().hex[:8]}@example.com"
                answer = http.post(f"{base}/v1/notifications", json=_alert(address),
                                   headers={**auth, "Connection": "close"})  # fmt: skip
                assert answer.status_code == 202
                posts += 1
        assert len(writers()) == 2, "one uvicorn worker served every request"
        posted = {"method": "POST", "route": "/v1/notifications", "status": "202"}
        # Whichever worker answers the scrape, it counts every request.
        for _ in range(4):
            _, after = scrape(f"{base}/metrics")
            moved = value(after, "notify_http_requests_total", **posted) - value(
                before, "notify_http_requests_total", **posted
            )
            assert moved == posts
        assert value(after, "notify_database_up") == 1
        assert value(after, "notify_queued_messages", lane="essential") >= posts
        assert value(after, "notify_oldest_queued_seconds", lane="essential") > 0
        assert value(after, "notify_campaigns", status="running") >= 0
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
        log.close()


def test_readyz_names_what_is_not_ready_and_healthz_only_says_alive(
    stack: Stack, client: TestClient, tmp_path: Path
) -> None:
    from notify.config import Settings
    from notify.migrate import upgrade
    from notify.web.app import create_app

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "broker": True, "migrations": True}
    behind = f"sqlite:///{tmp_path / 'behind.sqlite'}"
    upgrade(behind, "0013")
    settings = Settings(database_url=behind, broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as unready:
        answer = unready.get("/readyz")
        alive = unready.get("/healthz")
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
    assert answer.json()["down"] == ["broker", "migrations"]
    assert "notify db upgrade" in answer.json()["detail"]
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
