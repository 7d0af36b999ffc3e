"""Unit tests for notify.message.mime: the message as it goes on the wire, parsed back."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from notify.message.mime import (
    HeaderInjectionError,
    ascii_address,
    build_message,
    has_header_break,
    needs_smtputf8,
    new_message_id,
)
from notify.message.rendering import RenderedEmail, one_line

SENDER = "Security <security@notify.example>"
RECIPIENT = "ada@example.com"
MESSAGE_ID = "<20261127.abc123@mail.example.com>"
SENT_AT = datetime(2026, 11, 27, 9, 14, 5, tzinfo=UTC)
REQUIRED_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version")
# Every character the standards list as a header line break (item 101), spelled out here.
BREAK_CHARACTERS = "\r\n\x00\x0b\x0c\x85\u2028\u2029"

PLAIN = RenderedEmail(
    subject="Your weekly summary",
    text="Hello Ada,\n\nHere is your summary.\n",
    html="<!DOCTYPE html><html><body><p>Hello Ada,</p><p>Here is your summary.</p></body></html>",
)


def build(
    rendered: RenderedEmail = PLAIN,
    *,
    sender: str = SENDER,
    recipient: str = RECIPIENT,
    extra_headers: dict[str, str] | None = None,
) -> EmailMessage:
    return build_message(
        rendered,
        sender=sender,
        recipient=recipient,
        message_id=MESSAGE_ID,
        date=SENT_AT,
        extra_headers=extra_headers or {},
    )


def with_subject(subject: str) -> RenderedEmail:
    return RenderedEmail(subject=subject, text=PLAIN.text, html=PLAIN.html)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def header_names(raw: bytes) -> list[str]:
    return [name.lower() for name in parse(raw)]


CONTROL_HEADER_NAMES = header_names(build().as_bytes())


# --- structure -------------------------------------------------------------------------------


def test_the_message_is_multipart_alternative_with_plain_text_first_and_html_last():
    parsed = parse(build().as_bytes())

    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    text, html = (part.get_content() for part in parts)
    assert text.replace("\r\n", "\n") == PLAIN.text
    assert html.strip() == PLAIN.html
    assert parsed.get_body(("plain",)) is parts[0]
    assert parsed.get_body(("html",)) is parts[1]


def test_both_parts_are_non_empty_and_declared_utf8():
    parsed = parse(build().as_bytes())

    for part in parsed.iter_parts():
        assert part.get_content().strip()
        assert part.get_content_charset() == "utf-8"


@pytest.mark.parametrize("name", REQUIRED_HEADERS)
def test_each_required_header_appears_exactly_once(name):
    parsed = parse(build().as_bytes())

    assert len(parsed.get_all(name) or []) == 1


def test_header_values_are_the_ones_given():
    parsed = parse(build().as_bytes())

    assert parsed["From"] == SENDER
    assert parsed["To"] == RECIPIENT
    assert parsed["Subject"] == PLAIN.subject
    assert parsed["Message-ID"] == MESSAGE_ID
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(parsed["Date"]) == SENT_AT


def test_the_date_header_keeps_the_offset_of_an_aware_datetime():
    paris = timezone(timedelta(hours=1))
    when = datetime(2026, 12, 1, 8, 0, tzinfo=paris)
    message = build_message(
        PLAIN, sender=SENDER, recipient=RECIPIENT, message_id=MESSAGE_ID, date=when
    )

    parsed_date = parsedate_to_datetime(parse(message.as_bytes())["Date"])
    assert parsed_date == when
    assert parsed_date.utcoffset() == timedelta(hours=1)


def test_extra_headers_are_added_once_each():
    extra = {
        "List-Unsubscribe": "<https://notify.example.com/u/tok>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    parsed = parse(build(extra_headers=extra).as_bytes())

    for name, value in extra.items():
        assert parsed.get_all(name) == [value]


# --- header injection ------------------------------------------------------------------------

VECTORS = ["Hi\r\nBcc: x@evil", "Hi\n", "A\u2028B", "A\x00B", "A\x85B", "A\rB", "A\u2029B"]


@pytest.mark.parametrize("vector", VECTORS)
def test_a_line_break_in_the_subject_is_refused(vector):
    with pytest.raises(HeaderInjectionError):
        build(with_subject(vector))


@pytest.mark.parametrize("vector", VECTORS)
def test_a_line_break_in_the_sender_display_name_is_refused(vector):
    with pytest.raises(HeaderInjectionError):
        build(sender=f"{vector} <security@notify.example>")


@pytest.mark.parametrize("vector", VECTORS)
def test_a_line_break_in_the_recipient_is_refused(vector):
    with pytest.raises(HeaderInjectionError):
        build(recipient=f"{vector}@example.com")


@pytest.mark.parametrize("vector", VECTORS)
def test_a_line_break_in_an_extra_header_name_or_value_is_refused(vector):
    with pytest.raises(HeaderInjectionError):
        build(extra_headers={"X-Campaign": vector})
    with pytest.raises(HeaderInjectionError):
        build(extra_headers={f"X-{vector}": "spring"})


def test_header_injection_error_is_a_value_error():
    assert issubclass(HeaderInjectionError, ValueError)


@given(before=st.text(), breaker=st.sampled_from(BREAK_CHARACTERS), after=st.text())
def test_has_header_break_finds_a_break_character_anywhere_in_the_value(before, breaker, after):
    assert has_header_break(before + breaker + after)


@given(st.text(alphabet=st.characters(blacklist_characters=BREAK_CHARACTERS)))
def test_has_header_break_accepts_values_without_break_characters(value):
    assert not has_header_break(value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_a_short_one_line_subject_never_changes_the_header_set_and_round_trips(value):
    subject = one_line(value)
    if "\x00" in subject:
        with pytest.raises(HeaderInjectionError):
            build(with_subject(subject))
        return

    raw = build(with_subject(subject)).as_bytes()

    assert header_names(raw) == CONTROL_HEADER_NAMES
    assert parse(raw)["Subject"] == subject


ENCODED_WORD_VECTORS = [
    "=?UTF-8?Q?=0A?=Bcc: x@evil",
    "=?UTF-8?Q?Hi=0D=0ABcc:_x@evil?=",
    "Hello =?utf-8?q?=0A?=Bcc: x@evil",
]


@pytest.mark.parametrize("vector", ENCODED_WORD_VECTORS)
def test_an_encoded_word_line_break_in_the_subject_cannot_add_a_header(vector):
    try:
        raw = build(with_subject(vector)).as_bytes()
    except (HeaderInjectionError, ValueError):
        return  # refusing the value is fine
    assert header_names(raw) == CONTROL_HEADER_NAMES
    assert b"bcc" not in header_block(raw).lower()


def test_an_encoded_word_line_break_in_the_sender_display_name_cannot_add_a_header():
    try:
        raw = build(sender="=?UTF-8?Q?=0A?=Bcc: x@evil <security@notify.example>").as_bytes()
    except (HeaderInjectionError, ValueError):
        return
    assert header_names(raw) == CONTROL_HEADER_NAMES
    assert b"bcc" not in header_block(raw).lower()


def test_an_encoded_word_line_break_in_an_extra_header_cannot_add_a_header():
    try:
        raw = build(extra_headers={"X-Campaign": "=?UTF-8?Q?=0A?=Bcc: x@evil"}).as_bytes()
    except (HeaderInjectionError, ValueError):
        return
    names = header_names(raw)
    assert "bcc" not in names
    assert names.count("x-campaign") == 1


# --- line length and line endings ------------------------------------------------------------

LONG = RenderedEmail(
    subject="A message with very long lines",
    text="Start\n" + "t" * 3000 + "\nEnd\n",
    html="<html><body><p>" + "h" * 5000 + "</p></body></html>",
)


def test_no_line_of_the_raw_message_exceeds_998_octets():
    raw = build(LONG).as_bytes()

    longest = max(len(line) for line in raw.split(b"\r\n"))
    assert longest <= 998


def test_the_raw_message_uses_crlf_line_endings_only():
    raw = build(LONG).as_bytes()

    without_crlf = raw.replace(b"\r\n", b"")
    assert b"\r" not in without_crlf
    assert b"\n" not in without_crlf


def test_long_lines_survive_the_encoding_unchanged():
    parsed = parse(build(LONG).as_bytes())

    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = parsed.get_body(("html",)).get_content()
    assert "t" * 3000 in text
    assert "h" * 5000 in html


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(min_size=1, max_size=3000).filter(lambda value: value.strip()),
    html=st.text(min_size=1, max_size=3000).filter(lambda value: value.strip()),
)
def test_any_body_stays_within_998_octets_per_line_with_crlf_endings(text, html):
    raw = build(RenderedEmail(subject="Bodies", text=text, html=html)).as_bytes()

    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    without_crlf = raw.replace(b"\r\n", b"")
    assert b"\r" not in without_crlf
    assert b"\n" not in without_crlf


# --- non-ASCII headers -----------------------------------------------------------------------

ACCENTED_SUBJECT = (
    "Réunion d'équipe à Genève: votre sécurité, vos préférences et les nouveautés "
    "de l'été — découvrez ce qui a changé, révisez vos paramètres aujourd'hui."
)


def test_the_accented_test_subject_is_150_characters():
    assert len(ACCENTED_SUBJECT) == 150
    assert not ACCENTED_SUBJECT.isascii()


def test_a_150_character_accented_subject_is_ascii_on_the_wire_and_parses_back_exactly():
    raw = build(with_subject(ACCENTED_SUBJECT)).as_bytes()

    assert header_block(raw).isascii()
    assert parse(raw)["Subject"] == ACCENTED_SUBJECT


def test_an_accented_sender_display_name_is_encoded_and_parses_back():
    sender = "Sécurité Équipe <security@notify.example>"
    raw = build(sender=sender).as_bytes()

    assert header_block(raw).isascii()
    assert parse(raw)["From"] == sender


accented_words = st.sampled_from(
    ["été", "Genève", "à", "le", "mode", "sombre", "arrivée", "nouvelle", "clavier", "Ça", "dès"]
)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(accented_words, min_size=8, max_size=30))
@example(words=["nouvelle"] + ["été"] * 9)
def test_any_long_accented_subject_parses_back_with_every_space(words):
    subject = " ".join(words)
    raw = build(with_subject(subject)).as_bytes()

    assert header_block(raw).isascii()
    assert parse(raw)["Subject"] == subject


# --- addresses -------------------------------------------------------------------------------


def test_an_idn_domain_becomes_its_a_label():
    assert ascii_address("user@bücher.example") == "user@xn--bcher-kva.example"


def test_an_ascii_address_is_unchanged_by_ascii_address():
    assert ascii_address("Ada.Lovelace+news@Example.COM") == "Ada.Lovelace+news@Example.COM"


def test_the_to_header_carries_the_a_label_of_an_idn_domain():
    raw = build(recipient="user@bücher.example").as_bytes()

    assert b"To: user@xn--bcher-kva.example\r\n" in header_block(raw)


def test_a_non_ascii_local_part_needs_smtputf8_and_an_ascii_one_does_not():
    assert needs_smtputf8("jlópez@example.mx")
    assert not needs_smtputf8("jlopez@example.mx")
    assert not needs_smtputf8("user@bücher.example")  # the domain has an ASCII form


def test_a_non_ascii_local_part_is_never_rfc2047_encoded_in_the_to_header():
    raw = build(recipient="jlópez@example.mx").as_bytes()

    assert b"=?" not in header_block(raw)


# --- Message-ID ------------------------------------------------------------------------------


def test_a_new_message_id_is_on_the_sending_domain():
    message_id = new_message_id("mail.example.com")

    assert message_id.startswith("<")
    assert message_id.endswith("@mail.example.com>")
    assert message_id.count("@") == 1


def test_a_thousand_new_message_ids_are_all_different():
    ids = {new_message_id("mail.example.com") for _ in range(1000)}

    assert len(ids) == 1000


def test_a_long_list_unsubscribe_url_stays_on_one_unencoded_line():
    url = "https://notify.example.com/u/" + "A1b2_C3d4-" * 15
    message = build_message(
        RenderedEmail("Hello", "text\n", "<p>html</p>"),
        sender="News <news@example.com>",
        recipient="ada@example.com",
        message_id="<1@example.com>",
        date=datetime.now(UTC),
        unsubscribe_url=url,
        list_id="Product updates <product-updates.example.com>",
    )
    lines = message.as_bytes().split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert f"List-Unsubscribe: <{url}>".encode() in lines
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
