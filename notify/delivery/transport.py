"""Hands a built message to the outside world: an SMTP relay or a mailbox folder.

Every failure comes out as :class:`DeliveryError`, classed permanent (5xx, a bad address: never
retry) or transient (4xx, refused or dropped connections, timeouts: retry later). The SMTP
transport keeps one connection per process across messages, reconnects once when the server has
dropped it, and never sends in plain text when STARTTLS was asked for.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Protocol

from notify.config import SmtpTarget
from notify.masking import mask_addresses
from notify.message.mime import ascii_address, needs_smtputf8
from notify.observability import metrics

log = logging.getLogger(__name__)

_ENHANCED_CODE = re.compile(rb"([245])\.(\d{1,3})\.(\d{1,3})\b")
HARD_BOUNCE_CODES = frozenset({"5.1.1", "5.1.2", "5.2.1"})


@dataclass(eq=False)
class DeliveryError(Exception):  # not frozen: raising sets __traceback__
    """Why a message did not go; ``reason`` is safe to store and show (no address, no body)."""

    reason: str
    permanent: bool
    smtp_code: int | None = None
    enhanced_code: str | None = None

    def __str__(self) -> str:
        return self.reason

    @property
    def hard_bounce(self) -> bool:
        return self.permanent and self.enhanced_code in HARD_BOUNCE_CODES


def classify_reply(code: int, text: bytes | str) -> DeliveryError:
    """A negative SMTP reply as a :class:`DeliveryError`: 5yz permanent, anything else transient."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    match = _ENHANCED_CODE.match(raw.lstrip())  # RFC 2034: the code starts the text
    enhanced = match.group(0).decode() if match else None
    # Relays often echo the address ("<ada@example.com>: no such user"): mask it, since the
    # reason is stored and shown.
    message = mask_addresses(raw.decode("utf-8", "replace")).strip()[:300]
    return DeliveryError(
        reason=f"smtp {code} {message}".strip(),
        permanent=500 <= code <= 599,
        smtp_code=code,
        enhanced_code=enhanced,
    )


class Transport(Protocol):
    def send(self, message: Message, *, envelope_from: str, envelope_to: str) -> None:
        """Deliver ``message`` or raise :class:`DeliveryError`."""

    def send_raw(
        self, raw: bytes, *, message_id: str, envelope_from: str, envelope_to: str
    ) -> None:
        """Deliver a message already serialised (CRLF lines, ASCII addresses), or raise
        :class:`DeliveryError`."""

    def close(self) -> None: ...


class MailboxTransport:
    """Writes each message as an ``.eml`` file (atomically: temp file, then rename)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: Message, *, envelope_from: str, envelope_to: str) -> None:
        message_id = str(message["Message-ID"] or "")
        self.send_raw(
            message.as_bytes(),
            message_id=message_id,
            envelope_from=envelope_from,
            envelope_to=envelope_to,
        )

    def send_raw(
        self, raw: bytes, *, message_id: str, envelope_from: str, envelope_to: str
    ) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = message_id.strip("<>").replace("/", "_")
        final = self.folder / f"{name or 'message'}.eml"
        with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".tmp", delete=False) as file:
            file.write(raw)
        os.replace(file.name, final)

    def close(self) -> None:
        return None


_HandOver = Callable[[smtplib.SMTP], dict[str, tuple[int, bytes]]]
"""One SMTP transaction on an open connection; returns the refused recipients."""


class SmtpTransport:
    """One SMTP session per process, reused for every message; not thread-safe."""

    def __init__(self, target: SmtpTarget, *, timeout: float, ca_file: str | None = None):
        self.target = target
        self.timeout = timeout
        self.ca_file = ca_file
        self._connection: smtplib.SMTP | None = None
        self.connections_opened = 0

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def _connect(self) -> smtplib.SMTP:
        target = self.target
        try:
            connection: smtplib.SMTP
            if target.scheme == "smtps":
                connection = smtplib.SMTP_SSL(
                    target.host, target.port, timeout=self.timeout, context=self._tls_context()
                )
            else:
                connection = smtplib.SMTP(target.host, target.port, timeout=self.timeout)
            connection.ehlo()
            if target.scheme == "smtp+starttls":
                if not connection.has_extn("starttls"):
                    connection.close()
                    raise DeliveryError("relay does not offer STARTTLS; refusing to send", False)
                connection.starttls(context=self._tls_context())
                connection.ehlo()
            if target.username:
                connection.login(target.username, target.password or "")
        except smtplib.SMTPResponseException as error:
            raise classify_reply(error.smtp_code, error.smtp_error) from None
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"cannot connect to relay: {type(error).__name__}", False) from None
        self.connections_opened += 1
        return connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                connection.close()

    def send(self, message: Message, *, envelope_from: str, envelope_to: str) -> None:
        # as_bytes, not smtplib's send_message: that flattens with From-line mangling on, so a
        # body line starting "From " would arrive as ">From ". The message's own policy keeps
        # UTF-8 headers for an SMTPUTF8 message.
        self.send_raw(
            message.as_bytes(),
            message_id=str(message["Message-ID"] or ""),
            envelope_from=envelope_from,
            envelope_to=envelope_to,
        )

    def send_raw(
        self, raw: bytes, *, message_id: str, envelope_from: str, envelope_to: str
    ) -> None:
        sender, recipient = ascii_address(envelope_from), ascii_address(envelope_to)
        international = needs_smtputf8(sender) or needs_smtputf8(recipient)

        def hand_over(connection: smtplib.SMTP) -> dict[str, tuple[int, bytes]]:
            options: tuple[str, ...] = ()
            if international:  # as send_message does for a non-ASCII address
                if not connection.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError("relay lacks SMTPUTF8")
                options = ("SMTPUTF8", "BODY=8BITMIME")
            return connection.sendmail(sender, [recipient], raw, mail_options=options)

        started = time.perf_counter()
        try:
            self._send_with_reconnect(hand_over)
        except DeliveryError as error:
            metrics.observe_smtp(
                time.perf_counter() - started, refused=True, smtp_code=error.smtp_code
            )
            raise
        metrics.observe_smtp(time.perf_counter() - started)

    def _send_with_reconnect(self, hand_over: _HandOver) -> None:
        try:
            self._send_once(hand_over)
        except smtplib.SMTPServerDisconnected:
            # The relay closed an idle connection: reconnect once and try again.
            self._connection = None
            try:
                self._send_once(hand_over)
            except smtplib.SMTPServerDisconnected:
                self._connection = None
                raise DeliveryError("relay dropped the connection", False) from None

    def _send_once(self, hand_over: _HandOver) -> None:
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        try:
            refused = hand_over(connection)
        except smtplib.SMTPServerDisconnected:
            raise
        except smtplib.SMTPRecipientsRefused as error:
            self._reset()
            code, text = next(iter(error.recipients.values()))
            raise classify_reply(code, text) from None
        except smtplib.SMTPNotSupportedError:
            self._reset()
            raise DeliveryError("unsupported_address: relay lacks SMTPUTF8", True) from None
        except smtplib.SMTPResponseException as error:
            self._reset()
            raise classify_reply(error.smtp_code, error.smtp_error) from None
        except (TimeoutError, OSError) as error:
            self._connection = None
            connection.close()
            raise DeliveryError(
                f"relay timed out or failed: {type(error).__name__}", False
            ) from None
        except BaseException:
            # Anything else (a task time limit, say) may have left the SMTP session in the middle
            # of a transaction: never hand that connection to the next message.
            self._connection = None
            connection.close()
            raise
        if refused:
            code, text = next(iter(refused.values()))
            raise classify_reply(code, text)

    def _reset(self) -> None:
        """After a refused transaction the connection is still open: RSET before reusing it."""
        if self._connection is None:
            return
        try:
            self._connection.rset()
        except (OSError, smtplib.SMTPException):
            self._connection.close()
            self._connection = None


def make_transport(target: SmtpTarget, *, timeout: float, ca_file: str | None = None) -> Transport:
    if target.is_mailbox:
        return MailboxTransport(target.mailbox)
    return SmtpTransport(target, timeout=timeout, ca_file=ca_file)
