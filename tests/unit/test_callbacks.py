"""Callbacks without services: the signature, the URL rules, the backoff."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from notify.producers.callbacks import endpoints, signing
from notify.producers.callbacks.delivery import LONGEST_RETRY_SECONDS, retry_delay
from notify.producers.callbacks.events import body_of

BODY = json.dumps({"type": "notification.sent", "data": {"id": "n-1", "status": "sent"}})


def test_a_delivery_verifies_with_the_conventions_own_library_and_with_ours() -> None:
    secret = signing.new_secret()
    now = datetime.now(UTC)
    headers = signing.headers("msg_1", BODY, [secret], now)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    Webhook(secret).verify(BODY, headers)  # raises if it does not verify
    assert signing.verify(headers, BODY.encode(), [secret])


def test_while_rotating_both_secrets_sign_and_either_verifies() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    headers = signing.headers("msg_2", BODY, [old, new], datetime.now(UTC))
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert signing.verify(headers, BODY, [old])
    assert signing.verify(headers, BODY, [new])
    assert not signing.verify(headers, BODY, [signing.new_secret()])


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace("sent", "failed")),
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 600)}, b),
        lambda h, b: ({**h, "webhook-signature": "v1"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
    ],
)
def test_a_changed_body_id_or_stale_timestamp_does_not_verify(tamper) -> None:  # type: ignore[no-untyped-def]
    secret = signing.new_secret()
    headers, body = tamper(signing.headers("msg_3", BODY, [secret], datetime.now(UTC)), BODY)
    assert not signing.verify(headers, body, [secret])


@pytest.mark.parametrize(
    ("url", "development", "problem"),
    [
        ("http://hooks.example.com/x", False, "https://"),
        ("https://user:pw@hooks.example.com/x", False, "user name"),
        ("https://127.0.0.1/x", False, "loopback or private"),
        ("https://10.1.2.3/x", False, "loopback or private"),
        ("https://[::1]/x", False, "loopback or private"),
        ("https://169.254.169.254/latest", False, "loopback or private"),
        ("https://localhost/x", False, "resolves to a loopback"),
        ("https://nowhere.invalid/x", False, "does not resolve"),
        ("ftp://hooks.example.com/x", True, "https://"),
        ("https://hooks.example.com/a b", True, "spaces"),
        ("https:///x", True, "https://"),
    ],
)
def test_a_url_that_may_not_receive_callbacks_is_refused_with_why(
    url: str, development: bool, problem: str
) -> None:
    with pytest.raises(endpoints.CallbackUrlError, match=problem):
        endpoints.checked_url(url, development=development)


def test_development_allows_http_and_this_machine() -> None:
    assert endpoints.checked_url("http://127.0.0.1:9000/hook", development=True)
    assert endpoints.checked_url("https://93.184.215.14/hook", development=False)


def test_events_are_named_from_the_list_only() -> None:
    assert endpoints.checked_events(["notification.sent", "preference.changed"]) == [
        "notification.sent",
        "preference.changed",
    ]
    with pytest.raises(ValueError, match="one or more of"):
        endpoints.checked_events(["notification.opened"])


def test_the_backoff_doubles_from_five_seconds_to_an_hour_with_jitter_and_spans_a_day() -> None:
    rng = random.Random(7)
    delays = [retry_delay(attempt, rng) for attempt in range(1, 40)]
    assert 2.5 <= delays[0] <= 7.5
    assert all(delay <= LONGEST_RETRY_SECONDS * 1.5 for delay in delays)
    assert len({round(delay, 3) for delay in delays}) == len(delays)  # jittered, not a grid
    assert timedelta(seconds=sum(delays)) > timedelta(hours=24)  # 39 attempts reach a day


def test_the_body_holds_the_type_the_time_and_only_the_payload_given() -> None:
    created = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    payload = {"id": "n-1", "status": "sent", "reason": None}
    body = body_of("notification.sent", payload, created)
    assert body == {"type": "notification.sent", "timestamp": created.isoformat(), "data": payload}
    person = {"recipient": 7, "category": "product_updates", "change": "unsubscribed"}
    named = body_of("preference.changed", person, created, {7: "u-42"})["data"]
    assert named == {"user_id": "u-42", "category": "product_updates", "change": "unsubscribed"}
    erased = body_of("preference.changed", person, created, {7: None})["data"]
    assert erased["user_id"] is None and "recipient" not in erased


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::7f00:1", "::ffff:10.0.0.1", "fe80::1%eth0"],
)
def test_ipv6_addresses_that_carry_an_inward_ipv4_one_are_inward(address: str) -> None:
    assert endpoints.inward(address)
    assert not endpoints.inward("2606:4700::1111") and not endpoints.inward("93.184.215.14")


def test_delivery_connects_to_the_checked_address_and_keeps_the_name_for_host_and_tls() -> None:
    from notify.producers.callbacks.delivery import pinned

    url, pin = pinned("https://93.184.215.14:8443/hook?x=1")
    assert url == "https://93.184.215.14:8443/hook?x=1"
    assert pin == {
        "headers": {"host": "93.184.215.14:8443"},
        "extensions": {"sni_hostname": "93.184.215.14"},
    }
    with pytest.raises(endpoints.CallbackUrlError):
        pinned("https://127.0.0.1/hook")
