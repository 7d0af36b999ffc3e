"""Unit tests for SMTP reply classification and the mailbox transport (filesystem only)."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.delivery.transport import DeliveryError, MailboxTransport, classify_reply
from notify.message.mime import build_message
from notify.message.rendering import RenderedEmail

# --- classify_reply --------------------------------------------------------------------------


@pytest.mark.parametrize("code", [250, 251, 221])
def test_a_positive_reply_passed_by_mistake_is_never_a_permanent_failure_or_a_bounce(code):
    # classify_reply is only called for negative replies; a 2xx that slips through must not
    # fail the notification for good nor suppress the address.
    error = classify_reply(code, b"2.0.0 OK queued as 12345")

    assert not error.permanent
    assert not error.hard_bounce


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (451, b"4.3.0 Temporary lookup failure"),
        (421, b"4.7.0 Try again later, closing connection"),
        (450, b"4.2.1 The user you are trying to contact is receiving mail too quickly"),
        (452, b"4.2.2 Mailbox full"),
    ],
)
def test_a_4xx_reply_is_transient(code, text):
    error = classify_reply(code, text)

    assert error.permanent is False
    assert error.hard_bounce is False
    assert error.smtp_code == code


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (550, b"5.1.1 The email account that you tried to reach does not exist"),
        (553, b"5.1.2 Domain does not exist"),
        (554, b"5.7.1 Message rejected as spam"),
    ],
)
def test_a_5xx_reply_is_permanent(code, text):
    error = classify_reply(code, text)

    assert error.permanent is True
    assert error.smtp_code == code


@given(code=st.integers(min_value=400, max_value=499), text=st.binary(max_size=200))
def test_no_4xx_reply_is_permanent_or_a_hard_bounce_whatever_its_text(code, text):
    error = classify_reply(code, text)

    assert not error.permanent
    assert not error.hard_bounce


@given(code=st.integers(min_value=500, max_value=599), text=st.binary(max_size=200))
def test_every_5xx_reply_is_permanent_whatever_its_text(code, text):
    assert classify_reply(code, text).permanent


@pytest.mark.parametrize(
    ("code", "text", "enhanced"),
    [
        (550, b"5.1.1 <ada@example.com>: Recipient address rejected", "5.1.1"),
        (553, b"5.1.2 Bad destination system address", "5.1.2"),
        (550, b"5.2.1 The email account that you tried to reach is inactive", "5.2.1"),
        (451, b"4.7.1 Greylisted, please try again in 300 seconds", "4.7.1"),
        (550, "5.7.26 Unauthenticated email is not accepted", "5.7.26"),
    ],
)
def test_the_enhanced_status_code_is_extracted_from_bytes_or_str(code, text, enhanced):
    assert classify_reply(code, text).enhanced_code == enhanced


def test_a_reply_without_an_enhanced_code_has_none():
    error = classify_reply(550, b"Mailbox unavailable")

    assert error.enhanced_code is None
    assert not error.hard_bounce


@given(
    klass=st.sampled_from("245"),
    subject=st.integers(min_value=0, max_value=999),
    detail=st.integers(min_value=0, max_value=999),
    rest=st.text(alphabet=st.characters(whitelist_categories=("L", "Zs")), max_size=80),
)
def test_an_enhanced_code_at_the_start_of_the_reply_text_is_always_extracted(
    klass, subject, detail, rest
):
    code = f"{klass}.{subject}.{detail}"

    assert classify_reply(550, f"{code} {rest}").enhanced_code == code


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (550, b"5.1.1 The email account that you tried to reach does not exist"),
        (553, b"5.1.2 We were unable to deliver your message: domain not found"),
        (550, b"5.2.1 The email account that you tried to reach is disabled"),
    ],
)
def test_unknown_user_unknown_domain_and_disabled_account_are_hard_bounces(code, text):
    assert classify_reply(code, text).hard_bounce


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (550, b"5.7.1 Our system has detected that this message is likely unsolicited mail"),
        (550, b"5.7.26 Unauthenticated email from example.com is not accepted"),
        (554, b"5.7.1 Service unavailable; client host blocked using zen.spamhaus.org"),
        (421, b"4.7.28 Unusual rate of unsolicited mail from your IP"),
        (450, b"4.2.1 The user is receiving mail at a rate that prevents delivery"),
        (451, b"4.1.1 Recipient lookup temporarily failed"),
        (452, b"4.2.2 The email account that you tried to reach is over quota"),
    ],
)
def test_policy_rejections_and_4xx_replies_are_never_hard_bounces(code, text):
    assert not classify_reply(code, text).hard_bounce


def test_an_ip_address_in_a_policy_rejection_is_not_read_as_an_enhanced_code():
    error = classify_reply(554, b"Service unavailable; Client host [10.5.1.1] blocked")

    assert error.permanent
    assert error.enhanced_code is None
    assert not error.hard_bounce


def test_a_hard_bounce_needs_a_permanent_failure():
    transient = DeliveryError("smtp 450 5.1.1 odd", permanent=False, enhanced_code="5.1.1")
    permanent = DeliveryError("smtp 550 5.1.1 gone", permanent=True, enhanced_code="5.1.1")

    assert not transient.hard_bounce
    assert permanent.hard_bounce


def test_the_reason_names_the_code_and_is_bounded_in_length():
    error = classify_reply(550, b"5.1.1 " + b"x" * 5000)

    assert error.reason.startswith("smtp 550 5.1.1")
    assert len(error.reason) <= len("smtp 550 ") + 300
    assert str(error) == error.reason


def test_undecodable_reply_bytes_do_not_break_classification():
    error = classify_reply(550, b"5.1.1 \xff\xfe caf\xe9")

    assert error.enhanced_code == "5.1.1"
    assert error.reason.startswith("smtp 550")


# --- MailboxTransport ------------------------------------------------------------------------

RENDERED = RenderedEmail(
    subject="Your mailbox test",
    text="Hello Ada,\n\nThis went to a folder.\n",
    html="<p>Hello Ada,</p><p>This went to a folder.</p>",
)


def make_message(message_id: str = "<abc.123@mail.example.com>"):
    return build_message(
        RENDERED,
        sender="Accounts <accounts@notify.example>",
        recipient="ada@example.com",
        message_id=message_id,
        date=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
    )


def test_the_mailbox_transport_writes_one_parseable_eml_file(tmp_path):
    folder = tmp_path / "mailbox"  # does not exist yet
    message = make_message()

    MailboxTransport(folder).send(
        message, envelope_from="bounces@notify.example", envelope_to="ada@example.com"
    )

    files = list(folder.iterdir())
    assert len(files) == 1
    assert files[0].suffix == ".eml"
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == RENDERED.subject
    assert parsed["Message-ID"] == "<abc.123@mail.example.com>"
    assert parsed["To"] == "ada@example.com"
    body = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body == RENDERED.text


def test_two_messages_make_two_files_and_no_temporary_file_is_left(tmp_path):
    transport = MailboxTransport(tmp_path)
    for message_id in ("<one@mail.example.com>", "<two@mail.example.com>"):
        transport.send(
            make_message(message_id),
            envelope_from="bounces@notify.example",
            envelope_to="ada@example.com",
        )
    transport.close()

    names = sorted(path.name for path in tmp_path.iterdir())
    assert len(names) == 2
    assert all(name.endswith(".eml") for name in names)


def test_a_message_id_with_slashes_cannot_write_outside_the_mailbox_folder(tmp_path):
    folder = tmp_path / "box"
    MailboxTransport(folder).send(
        make_message("<../../escape/x@mail.example.com>"),
        envelope_from="bounces@notify.example",
        envelope_to="ada@example.com",
    )

    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) == 1
    assert written[0].parent == folder


class _Interrupted(BaseException):
    """What a task's soft time limit raises inside smtplib."""


class _HalfwayConnection:
    """Stands in for an SMTP session that is interrupted in the middle of a transaction."""

    closed = False

    def sendmail(self, *_: object, **__: object) -> dict[str, tuple[int, bytes]]:
        raise _Interrupted

    def close(self) -> None:
        self.closed = True


def test_an_interrupted_send_never_leaves_its_connection_for_the_next_message() -> None:
    from email.message import Message

    from notify.config import SmtpTarget
    from notify.delivery.transport import SmtpTransport

    transport = SmtpTransport(SmtpTarget("smtp://127.0.0.1:1"), timeout=1)
    halfway = _HalfwayConnection()
    transport._connection = halfway  # type: ignore[assignment]
    with pytest.raises(_Interrupted):
        transport.send(Message(), envelope_from="a@example.com", envelope_to="b@example.com")
    assert halfway.closed
    assert transport._connection is None
