"""Preferences, one-click unsubscribe and suppression, end to end: real PostgreSQL, Redis, a
Celery worker process, aiosmtpd, and ``notify web`` as a process for curl."""

from __future__ import annotations

import email
import re
import subprocess
import time
import uuid
from email import policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from notify.config import Settings
from notify.message.tokens import unsubscribe_token
from notify.models import ConsentEvent, Recipient
from notify.web.app import create_app
from tests.support.services import WebProcess, wait_until
from tests.support.stack import Stack, send, wait_for_status

pytestmark = pytest.mark.integration
SCANNERS = [
    "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; Microsoft Outlook SafeLinks)",
    "Barracuda Sentinel (EE)",
    "Mimecast URL Protect",
    "Proofpoint URL Defense",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120",
]


def new_user(client: TestClient, auth: dict[str, str]) -> tuple[str, str]:
    token = uuid.uuid4().hex[:12]
    user_id, address = f"u-{token}", f"pref-{token}@example.com"
    assert (
        client.put(f"/v1/users/{user_id}", json={"email": address}, headers=auth).status_code == 201
    )
    return user_id, address


def delivered(
    stack: Stack, address: str, count: int = 1, timeout: float = 30
) -> list[EmailMessage]:
    def enough() -> list[Any]:
        found = stack.smtp.handler.messages_to(address)
        return found if len(found) >= count else []

    messages = wait_until(enough, timeout, f"{count} message(s) to {address}")
    return [
        cast(EmailMessage, email.message_from_bytes(m.content, policy=policy.default))
        for m in messages
    ]


def raw_messages(stack: Stack, address: str) -> list[bytes]:
    return [message.content for message in stack.smtp.handler.messages_to(address)]


def unsubscribe_path(message: EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    match = re.fullmatch(r"<https://notify\.example\.com(/u/[A-Za-z0-9_.\-]+)>", header)
    assert match, header
    return match.group(1)


def subscribed(client: TestClient, auth: dict[str, str], user_id: str) -> bool:
    response = client.get(f"/v1/users/{user_id}/preferences", headers=auth)
    return bool(response.json()["categories"]["product_updates"]["subscribed"])


def consent_count(stack: Stack, user_id: str) -> int:
    with stack.sessions() as session:
        recipient_id = session.scalar(select(Recipient.id).where(Recipient.user_id == user_id))
        return int(
            session.scalar(select(func.count()).where(ConsentEvent.recipient_id == recipient_id))
            or 0
        )


def test_a_product_update_carries_one_click_headers_and_the_layouts_footer(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = new_user(client, auth)
    send(client, auth, user_id, "product_update")
    raw = delivered(stack, address) and raw_messages(stack, address)[0]
    headers = raw.split(b"\r\n\r\n", 1)[0]
    lines = headers.split(b"\r\n")
    unsubscribe = [line for line in lines if line.lower().startswith(b"list-unsubscribe:")]
    assert len(unsubscribe) == 1
    assert re.fullmatch(
        rb"List-Unsubscribe: <https://notify\.example\.com/u/[A-Za-z0-9_.\-]+>", unsubscribe[0]
    )
    assert len(unsubscribe[0]) - len(b"List-Unsubscribe: <>") < 200
    assert [line for line in lines if line.lower().startswith(b"list-unsubscribe-post:")] == [
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    ]
    assert sum(line.lower().startswith(b"list-id:") for line in lines) == 1
    assert b"=?" not in unsubscribe[0]

    message = cast(EmailMessage, email.message_from_bytes(raw, policy=policy.default))
    url = f"https://notify.example.com{unsubscribe_path(message)}"
    for part in ("plain", "html"):
        body = message.get_body((part,)).get_content()
        assert url in body
        assert stack.settings.postal_address in body
        assert "https://notify.example.com/preferences/" in body


def test_essential_mail_has_no_unsubscribe_headers_and_says_why(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = new_user(client, auth)
    send(client, auth, user_id, "security_alert")
    message = delivered(stack, address)[0]
    for header in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"):
        assert header not in message
    for part in ("plain", "html"):
        body = message.get_body((part,)).get_content()
        assert "cannot be turned off" in body
        assert "https://notify.example.com/preferences/" in body
        assert "/u/" not in body


def test_a_one_click_post_sent_as_gmail_sends_it_stops_product_updates_but_not_security_alerts(
    stack: Stack, client: TestClient, auth: dict[str, str], web_server: WebProcess
) -> None:
    user_id, address = new_user(client, auth)
    send(client, auth, user_id, "product_update")
    path = unsubscribe_path(delivered(stack, address)[0])

    curl = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-d",
            "List-Unsubscribe=One-Click",
            f"{web_server.base_url}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert curl.stdout == "200"
    assert not subscribed(client, auth, user_id)

    update = send(client, auth, user_id, "product_update")
    row = wait_for_status(stack, update, "suppressed")
    assert row.reason == "unsubscribed"
    alert = send(client, auth, user_id, "security_alert")
    wait_for_status(stack, alert, "sent")
    messages = delivered(stack, address, count=2)
    assert [m["Subject"].startswith("Security alert") for m in messages] == [False, True]
    token = path.removeprefix("/u/")
    assert token not in web_server.log_path.read_text(), "a token reached the web server's log"


def test_an_unsubscribe_that_lands_while_the_message_waits_in_the_queue_is_honoured(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = new_user(client, auth)
    with stack.sessions() as session:
        public_id = session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
    token = unsubscribe_token(stack.settings.secret_key_list, str(public_id), "product_updates")
    stack.worker.stop()
    notification_id = send(client, auth, user_id, "product_update")
    assert client.post(f"/u/{token}").status_code == 200  # empty body: still one click
    stack.worker.start()
    row = wait_for_status(stack, notification_id, "suppressed")
    assert row.reason == "unsubscribed"
    assert stack.smtp.handler.messages_to(address) == []


def test_scanners_fetching_the_link_fifty_times_change_nothing(
    stack: Stack, client: TestClient, auth: dict[str, str], web_server: WebProcess
) -> None:
    import urllib.request

    user_id, address = new_user(client, auth)
    send(client, auth, user_id, "product_update")
    path = unsubscribe_path(delivered(stack, address)[0])
    events_before = consent_count(stack, user_id)
    for index in range(50):
        method = "HEAD" if index % 2 else "GET"
        request = urllib.request.Request(
            f"{web_server.base_url}{path}",
            method=method,
            headers={"User-Agent": SCANNERS[index % len(SCANNERS)]},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert response.headers["X-Robots-Tag"] == "noindex"
    assert subscribed(client, auth, user_id)
    assert consent_count(stack, user_id) == events_before


def test_the_unsubscribe_page_names_the_category_masks_the_address_and_runs_no_script(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = new_user(client, auth)
    send(client, auth, user_id, "product_update")
    page = client.get(unsubscribe_path(delivered(stack, address)[0]))
    assert page.status_code == 200
    assert "product updates" in page.text.lower()
    assert "p***@example.com" in page.text
    assert address not in page.text
    assert "<script" not in page.text.lower()
    assert page.text.count('method="post"') == 2


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"),
        (b"", None),
        (b"\xff\xfe not a form", "application/x-www-form-urlencoded"),
        (
            b"--b\r\nContent-Disposition: form-data; "
            b'name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
        (b'{"json": true}', "application/json"),
    ],
    ids=["urlencoded", "empty", "garbage", "multipart", "json"],
)
def test_any_body_unsubscribes_without_a_redirect_and_repeating_it_is_harmless(
    stack: Stack, client: TestClient, auth: dict[str, str], content: bytes, content_type: str | None
) -> None:
    user_id, _ = new_user(client, auth)
    with stack.sessions() as session:
        public_id = session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
    token = unsubscribe_token(stack.settings.secret_key_list, str(public_id), "product_updates")
    headers = {"Cookie": "session=forged; csrftoken=x", "X-CSRFToken": "nonsense"}
    if content_type:
        headers["Content-Type"] = content_type
    for _ in range(2):
        response = client.post(
            f"/u/{token}", content=content, headers=headers, follow_redirects=False
        )
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
    assert not subscribed(client, auth, user_id)
    assert consent_count(stack, user_id) == 1


def test_undo_subscribes_again_and_is_recorded(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, _ = new_user(client, auth)
    with stack.sessions() as session:
        public_id = session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
    token = unsubscribe_token(stack.settings.secret_key_list, str(public_id), "product_updates")
    answer = client.post(f"/u/{token}", data={"via": "page"})
    assert "/undo" in answer.text
    assert client.post(f"/u/{token}/undo", data={"category": "product_updates"}).status_code == 200
    assert subscribed(client, auth, user_id)
    events = client.get(f"/v1/users/{user_id}/consent", headers=auth).json()
    assert [(e["action"], e["source"]) for e in events] == [
        ("subscribed", "undo"),
        ("unsubscribed", "page"),  # the page's own button, not a mail client's RFC 8058 POST
    ]


def test_every_kind_of_bad_token_gets_the_same_page_and_changes_nothing(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, _ = new_user(client, auth)
    with stack.sessions() as session:
        public_id = str(
            session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
        )
    keys = stack.settings.secret_key_list
    good = unsubscribe_token(keys, public_id, "product_updates")
    bad = {
        "forged": unsubscribe_token(["someone-elses-key"], public_id, "product_updates"),
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "truncated": good[: len(good) // 2],
        "unknown-recipient": unsubscribe_token(keys, "no-such-person", "product_updates"),
        "garbage": "%00%ff..",
        "essential": good.replace(good, _essential_token(keys, public_id)),
    }
    answers = set()
    for token in bad.values():
        for method in ("GET", "POST"):
            response = client.request(method, f"/u/{token}")
            assert response.status_code == 404
            assert "@" not in response.text.split("<footer>")[0]
            answers.add(response.text)
    assert len(answers) == 1
    assert subscribed(client, auth, user_id)
    assert consent_count(stack, user_id) == 0


def _essential_token(keys: list[str], public_id: str) -> str:
    from itsdangerous import URLSafeSerializer

    from notify.message.tokens import UNSUBSCRIBE_SALT

    return str(URLSafeSerializer(keys, salt=UNSUBSCRIBE_SALT).dumps([public_id, "security"]))


def test_a_link_signed_before_a_key_rotation_still_works(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, _ = new_user(client, auth)
    with stack.sessions() as session:
        public_id = str(
            session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
        )
    old_token = unsubscribe_token(stack.settings.secret_key_list, public_id, "product_updates")
    rotated = Settings(
        database_url=stack.settings.database_url,
        broker_url=stack.settings.broker_url,
        secret_keys=f"{stack.settings.secret_keys},a-brand-new-key",
    )
    with TestClient(create_app(rotated)) as rotated_client:
        assert rotated_client.post(f"/u/{old_token}").status_code == 200
        new_token = unsubscribe_token(rotated.secret_key_list, public_id, "product_updates")
        assert new_token != old_token
        assert rotated_client.get(f"/u/{new_token}").status_code == 200
    assert not subscribed(client, auth, user_id)


def test_the_api_refuses_to_turn_off_essential_mail_and_changes_all_or_nothing(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, _ = new_user(client, auth)
    url = f"/v1/users/{user_id}/preferences"
    for body in (
        {"security": False},
        {"admin": False},
        {"product_updates": False, "nope": True},
        {"product_updates": "no"},
        {},
    ):
        response = client.patch(url, json=body, headers=auth)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["loc"][0] == "body"
    assert subscribed(client, auth, user_id)
    changed = client.patch(url, json={"product_updates": False, "security": True}, headers=auth)
    assert changed.status_code == 200
    state = changed.json()["categories"]
    assert state["product_updates"] == {
        **state["product_updates"],
        "subscribed": False,
        "source": "api",
    }
    assert state["security"]["subscribed"] is True and state["security"]["essential"] is True
    event = client.get(f"/v1/users/{user_id}/consent", headers=auth).json()[0]
    assert (event["source"], event["actor"]) == ("api", "test")


def test_a_hard_bounce_at_smtp_time_suppresses_all_mail_to_the_address(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = new_user(client, auth)
    stack.smtp.handler.script[address] = ["550 5.1.1 no such mailbox"]
    first = send(client, auth, user_id, "admin_notice")
    assert wait_for_status(stack, first, "failed").reason is not None
    for template in ("security_alert", "product_update"):
        row = wait_for_status(stack, send(client, auth, user_id, template), "suppressed")
        assert row.reason == "bounced"
    assert stack.smtp.handler.messages_to(address) == []
    events = client.get(f"/v1/users/{user_id}/consent", headers=auth).json()
    assert events[0]["source"] == "bounce"
    assert events[0]["notification_id"] == first


def test_a_policy_rejection_never_suppresses_the_recipient(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = new_user(client, auth)
    stack.smtp.handler.script[address] = ["550 5.7.1 message looks like spam from [10.5.1.1]"]
    first = send(client, auth, user_id, "product_update")
    wait_for_status(stack, first, "failed")
    second = send(client, auth, user_id, "product_update")
    wait_for_status(stack, second, "sent")
    assert len(delivered(stack, address)) == 1


def test_a_complaint_stops_product_updates_and_lifting_it_restores_them(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = new_user(client, auth)
    report = {"email": address, "type": "complaint", "detail": "feedback loop"}
    answer = client.post("/v1/suppressions/reports", json=report, headers=auth)
    assert answer.json() == {"suppressed": True, "reason": "complaint"}
    row = wait_for_status(stack, send(client, auth, user_id, "product_update"), "suppressed")
    assert row.reason == "complained"
    wait_for_status(stack, send(client, auth, user_id, "security_alert"), "sent")
    soft = {"email": address, "type": "bounce", "status": "4.2.2"}
    assert (
        client.post("/v1/suppressions/reports", json=soft, headers=auth).json()["suppressed"]
        is False
    )

    assert client.delete(f"/v1/suppressions/{address}", headers=auth).status_code == 204
    assert client.delete(f"/v1/suppressions/{address}", headers=auth).status_code == 404
    wait_for_status(stack, send(client, auth, user_id, "product_update"), "sent")
    sources = [e["source"] for e in client.get(f"/v1/users/{user_id}/consent", headers=auth).json()]
    assert sources[:2] == ["operator", "complaint"]


def test_an_operator_suppression_holds_for_a_new_spelling_of_the_address(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = new_user(client, auth)
    answer = client.post("/v1/suppressions", json={"email": address.upper()}, headers=auth)
    assert answer.status_code == 201
    assert client.post("/v1/suppressions", json={"email": address}, headers=auth).status_code == 200
    row = wait_for_status(stack, send(client, auth, user_id, "product_update"), "suppressed")
    assert row.reason == "suppressed"


def test_asking_for_a_preferences_link_answers_the_same_and_mails_only_known_addresses(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, address = new_user(client, auth)
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    known_page = client.post("/preferences", data={"email": address})
    unknown_page = client.post("/preferences", data={"email": unknown})
    assert known_page.status_code == unknown_page.status_code == 200
    assert known_page.text == unknown_page.text
    assert client.post("/preferences", data={"email": "not an address"}).text == known_page.text

    message = delivered(stack, address)[0]
    link = re.search(
        r"https://notify\.example\.com(/preferences/[A-Za-z0-9_.\-]+)",
        message.get_body(("plain",)).get_content(),
    )
    assert link is not None
    client.post("/preferences", data={"email": address})  # within the interval: no second email
    time.sleep(2)
    assert len(stack.smtp.handler.messages_to(address)) == 1
    assert stack.smtp.handler.messages_to(unknown) == []

    page = client.get(link.group(1))
    assert page.status_code == 200
    assert "always on" in page.text
    saved = client.post(link.group(1), data={"choices": "1"})  # every optional box unticked
    assert saved.status_code == 200 and "Saved" in saved.text
    assert not subscribed(client, auth, user_id)
    events = client.get(f"/v1/users/{user_id}/consent", headers=auth).json()
    assert events[0]["source"] == "preference_centre"


def test_an_expired_preferences_link_offers_a_fresh_one(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from notify.message.tokens import PREFERENCES_SALT

    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 31 * 86_400

    user_id, _ = new_user(client, auth)
    with stack.sessions() as session:
        public_id = str(
            session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
        )
    old = URLSafeTimedSerializer(
        stack.settings.secret_key_list, salt=PREFERENCES_SALT, signer=LongAgo
    )
    page = client.get(f"/preferences/{old.dumps(public_id)}")
    assert page.status_code == 410
    assert "expired" in page.text
    assert 'action="/preferences"' in page.text
    assert client.post(f"/preferences/{old.dumps(public_id)}", data={}).status_code == 410
    assert subscribed(client, auth, user_id)


def test_an_unsubscribe_is_committed_even_when_the_broker_is_down(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id, _ = new_user(client, auth)
    with stack.sessions() as session:
        public_id = str(
            session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id))
        )
    token = unsubscribe_token(stack.settings.secret_key_list, public_id, "product_updates")
    no_broker = Settings(
        database_url=stack.settings.database_url,
        broker_url="redis://127.0.0.1:1/0",
        secret_keys=stack.settings.secret_keys,
    )
    with TestClient(create_app(no_broker)) as offline:
        assert (
            offline.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
        )
    assert not subscribed(client, auth, user_id)
