"""Returned messages as each kind of server writes them (written for these tests from RFC 3464,
RFC 5965 and the formats the providers document), read by notify.inbound.reports."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from notify.inbound import reports
from notify.message import return_addresses

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbound"
KEYS = ["unit-key-old", "unit-key-new"]
DOMAIN = "bounces.example.com"


def message(
    name: str, rcpt: str = "bounces+x@bounces.example.com", address: str = "ada@example.com"
) -> bytes:
    text = (FIXTURES / name).read_text()
    return text.replace("{RCPT}", rcpt).replace("{ADDRESS}", address).replace("\n", "\r\n").encode()


@pytest.mark.parametrize(
    ("name", "kind", "statuses"),
    [
        ("postfix_user_unknown.eml", reports.DSN, ["5.1.1"]),
        ("exim_host_unknown.eml", reports.DSN, ["5.1.2"]),
        ("gmail_no_such_account.eml", reports.DSN, ["5.1.1"]),
        ("outlook_mailbox_full.eml", reports.DSN, ["5.2.2"]),
        ("ses_bounce.eml", reports.DSN, ["5.1.1"]),
        ("delayed.eml", reports.DSN, []),  # a delay is not a bounce
        ("arf_complaint.eml", reports.COMPLAINT, []),
        ("out_of_office.eml", reports.UNREADABLE, []),
    ],
)
def test_each_kind_of_returned_message_is_read_as_what_it_is(
    name: str, kind: str, statuses: list[str]
) -> None:
    report = reports.read(message(name))
    assert report.kind == kind
    assert [failure.status for failure in report.failures] == statuses
    if kind == reports.COMPLAINT:
        assert report.feedback_type == "abuse"


def test_a_postfix_bounce_keeps_the_remote_servers_words() -> None:
    [failure] = reports.read(message("postfix_user_unknown.eml")).failures
    assert failure.diagnostic is not None and "User unknown" in failure.diagnostic


def test_garbage_is_unreadable_and_never_raises() -> None:
    for raw in (
        b"",
        b"\x00\xff" * 100,
        b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nx",
    ):
        assert reports.read(raw).kind == reports.UNREADABLE


def test_return_addresses_are_short_lower_case_and_signed() -> None:
    notification_id = str(uuid.uuid4())
    bounce = return_addresses.bounce_address(KEYS, notification_id, DOMAIN)
    local = bounce.split("@")[0]
    assert len(local) <= 64 and local == local.lower()
    assert return_addresses.read(KEYS, bounce.upper(), DOMAIN) == return_addresses.Returned(
        return_addresses.BOUNCES, notification_id=notification_id
    )
    assert return_addresses.read(KEYS[:1], bounce, DOMAIN) is None  # signed by the newest key
    assert return_addresses.read(KEYS, bounce, "other.example.com") is None
    forged = bounce.replace(local[-3:], "000")
    assert return_addresses.read(KEYS, forged, DOMAIN) is None
    unsubscribe = return_addresses.unsubscribe_address(
        KEYS, "3XNGn1QDjfW4wWo5", "product_updates", 42, DOMAIN
    )
    assert len(unsubscribe.split("@")[0]) <= 64
    read = return_addresses.read(KEYS, unsubscribe, DOMAIN)
    assert read is not None and (read.public_id, read.category, read.campaign_id) == (
        "3XNGn1QDjfW4wWo5",
        "product_updates",
        42,
    )


def test_the_sns_string_to_sign_is_the_documented_one() -> None:
    from notify.inbound import sns

    note = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:t",
        "Message": "hello",
        "Timestamp": "2026-11-28T12:00:00.000Z",
        "Signature": "ignored",
    }
    assert sns.string_to_sign(note) == (
        b"Message\nhello\nMessageId\nm-1\nTimestamp\n2026-11-28T12:00:00.000Z\n"
        b"TopicArn\narn:t\nType\nNotification\n"
    )
    assert b"Subject\nHi\nTimestamp" in sns.string_to_sign({**note, "Subject": "Hi"})
    confirmation = {**note, "Type": "SubscriptionConfirmation", "SubscribeURL": "u", "Token": "k"}
    assert sns.string_to_sign(confirmation) == (
        b"Message\nhello\nMessageId\nm-1\nSubscribeURL\nu\nTimestamp\n2026-11-28T12:00:00.000Z\n"
        b"Token\nk\nTopicArn\narn:t\nType\nSubscriptionConfirmation\n"
    )
    for url in ("http://sns.eu-west-1.amazonaws.com/c.pem", "https://sns.evil.com/c.pem",
                "https://sns.eu-west-1.amazonaws.com.evil.com/c.pem"):  # fmt: skip
        with pytest.raises(sns.SnsError):
            sns.amazon_url(url)


def test_every_optional_category_has_a_fixed_mailto_code_and_no_essential_one() -> None:
    from notify.categories import CATEGORIES

    optional = {key for key, category in CATEGORIES.items() if not category.essential}
    assert set(return_addresses.CATEGORY_CODES) == optional
    codes = list(return_addresses.CATEGORY_CODES.values())
    assert len(set(codes)) == len(codes) and all(code.isalnum() for code in codes)


def test_a_language_tag_with_a_trailing_line_break_is_refused() -> None:
    from notify.message.validation import locale_tag

    with pytest.raises(ValueError, match="language tag"):
        locale_tag("fr\n")


def test_kept_messages_are_capped_and_old_ones_removed(tmp_path: Path) -> None:
    import os
    import time

    from notify.config import Settings
    from notify.inbound.handling import keep

    settings = Settings(inbound_keep_dir=str(tmp_path), inbound_keep_max_mb=1)
    old = tmp_path / "old.eml"
    old.write_bytes(b"x")
    long_ago = time.time() - (settings.retention_content_days + 1) * 86_400
    os.utime(old, (long_ago, long_ago))
    first = keep(settings, b"a" * 600_000, "test")
    assert first is not None and first.read_bytes() == b"a" * 600_000
    assert not old.exists()  # past the retention
    assert keep(settings, b"b" * 600_000, "test") is None  # over 1 MB in all: not kept
    assert [path.name for path in tmp_path.iterdir()] == [first.name]
