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
from notify.message.personal import PersonalFields
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


def _comparable(raw: bytes) -> list[object]:
    """Every header (the multipart boundary aside) and every part's decoded content; the
    preference link's token carries the second it was signed, so it is compared by shape."""
    message = email.message_from_bytes(raw, policy=policy.default)
    headers = [
        (name, re.sub(r'boundary="[^"]+"', "", str(value))) for name, value in message.items()
    ]
    parts = [
        (
            part.get_content_type(),
            part.get("Content-Transfer-Encoding"),
            PREFERENCE_LINK.sub("/preferences/TOKEN", part.get_content()),
        )
        for part in message.walk()
        if not part.is_multipart()
    ]
    return [headers, parts]


ADDRESSES = [
    "ada@example.com",
    "Grace.Hopper+news@Example.COM",
    "o'brien@example.ie",
    "user@bücher.example",  # an IDN domain, written as its A-label
    "jürgen@example.de",  # needs SMTPUTF8: built in full
    "a-very-long-local-part-that-goes-on-and-on-and-on@a-long-domain-name.example.org",
    "x@y.z",
]
FIRST_NAMES = [
    None,
    "Ada",
    "Zoë",
    "Ōtake <b>&</b>",
    "",
    "Grace",
    "Ada",
    " ".join(["José-María"] * 9),
]


@pytest.mark.parametrize("locale", ["en", "de-AT", None])
def test_serialised_bytes_parse_equal_to_the_full_message_for_many_people(
    locale: str | None,
) -> None:
    crypto.install(["unit-test-key"])
    settings = Settings(public_url="https://notify.example.com", company_name="Beispiel GmbH")
    data = dict(get_template("product_update").sample)
    data.update(headline="Grüße: der dunkle Modus ist da — endlich", summary="Ça marche.  ")
    composer = BatchComposer(settings, "product_update", "product_updates", data)
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    for number in range(300):
        address = ADDRESSES[number % len(ADDRESSES)]
        person = job("product_update", locale)
        person = Claimed(
            **{
                **person.__dict__,
                "id": f"n-{number}",
                "data": data,
                "email": address,
                "message_id": f"<{number}.{'x' * (number % 50)}@mail.example>",
                "recipient_public_id": f"pub-{number}-{'é' if number % 11 == 0 else ''}",
                "personal": PersonalFields(first_name=FIRST_NAMES[number % len(FIRST_NAMES)]),
            }
        )
        full = compose(settings, person, now=now).as_bytes()
        fast = composer.raw(person, now=now)
        assert _comparable(fast) == _comparable(full), address
        name = person.personal.first_name
        hello = "Hallo" if locale == "de-AT" else "Hello"  # German for an Austrian reader
        greeting = (
            f"{hello} {name}," if name else ("Hallo," if locale == "de-AT" else "Hello there,")
        )
        text = email.message_from_bytes(fast, policy=policy.default).get_body(("plain",))
        assert greeting in text.get_content()  # type: ignore[union-attr]
        head, _, body = fast.partition(b"\r\n\r\n")
        longest_in_full = max(map(len, full.partition(b"\r\n\r\n")[2].split(b"\r\n")))
        assert all(len(line) <= 998 for line in head.split(b"\r\n"))
        assert max(map(len, body.split(b"\r\n"))) <= longest_in_full  # encoded as in full


def test_with_an_inbound_domain_both_paths_offer_the_persons_mailto_before_the_url() -> None:
    from notify.message import links, return_addresses

    crypto.install(["unit-test-key"])
    settings = Settings(public_url="https://notify.example.com", inbound_domain="in.example.com")
    data = dict(get_template("product_update").sample)
    composer = BatchComposer(settings, "product_update", "product_updates", data)
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    for number, public_id in enumerate(["3XNGn1QDjfW4wWo5", "AAAAAAAAAAAAAAAA"]):
        person = Claimed(**{**job("product_update").__dict__, "recipient_public_id": public_id})
        person = Claimed(**{**person.__dict__, "campaign_id": 7, "id": f"n-{number}"})
        full = compose(settings, person, now=now).as_bytes()
        fast = composer.raw(person, now=now)
        assert _comparable(fast) == _comparable(full)
        header = email.message_from_bytes(fast, policy=policy.default)["List-Unsubscribe"]
        mailto, url = (part.strip(" <>") for part in str(header).split(","))
        returned = return_addresses.read(
            settings.secret_key_list, mailto.removeprefix("mailto:"), "in.example.com"
        )
        assert returned is not None and returned.public_id == public_id
        assert returned.campaign_id == 7 and url.startswith("https://notify.example.com/u/")
    sender = links.envelope_sender(settings, "0b6f0d1e-1111-4222-8333-944455556666", "security")
    assert sender.startswith("bounces+0b6f0d1e11114222833394445555666")
    plain = Settings(public_url="https://notify.example.com")
    assert links.envelope_sender(plain, "x", "security") == "security@notify.localhost"
