"""The campaign fast path builds the same message as the one-by-one path."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy

import pytest

from notify import crypto
from notify.config import Settings
from notify.message.composing import BatchComposer, compose
from notify.message.jobs import Claimed
from notify.message.templates import get_template

PREFERENCE_LINK = re.compile(r"/preferences/[A-Za-z0-9_.\-]+")


def job(template: str, locale: str | None = "en") -> Claimed:
    return Claimed(
        id="n-1",
        template=template,
        category=get_template(template).category.key,
        data=dict(get_template(template).sample),
        attempts=1,
        message_id="<m-1@mail.example>",
        email="ada@example.com",
        recipient_id=7,
        recipient_public_id="pub-7",
        locale=locale,
        erased=False,
    )


def parsed(message: object) -> email.message.EmailMessage:
    raw = message.as_bytes()  # type: ignore[attr-defined]
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


@pytest.mark.parametrize("locale", ["en", "fr-FR", None])
def test_the_batch_composer_builds_what_compose_builds(locale: str | None) -> None:
    crypto.install(["unit-test-key"])
    settings = Settings(public_url="https://notify.example.com")
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    one = parsed(compose(settings, job("product_update", locale), now=now))
    fast = parsed(
        BatchComposer(
            settings,
            "product_update",
            "product_updates",
            dict(get_template("product_update").sample),
        ).message(job("product_update", locale), now=now)
    )
    for header in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "Auto-Submitted",
    ):
        assert one[header] == fast[header], header
    for part in ("plain", "html"):
        slow_body = PREFERENCE_LINK.sub("/preferences/T", one.get_body((part,)).get_content())
        fast_body = PREFERENCE_LINK.sub("/preferences/T", fast.get_body((part,)).get_content())
        assert slow_body == fast_body
        assert "slot.invalid" not in fast_body
        assert str(fast["List-Unsubscribe"]).strip("<>") in fast_body
