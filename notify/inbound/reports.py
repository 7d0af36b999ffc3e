"""What a returned message says, read with the standard library's email parser. Pure.

* A delivery status notification (RFC 3464: ``multipart/report; report-type=delivery-status``)
  gives, per recipient, its ``Action`` and ``Status`` (``5.1.1``); only ``failed`` ones are
  bounces (``delayed`` ones are not).
* A feedback report (RFC 5965: ``multipart/report; report-type=feedback-report``) is a
  complaint, whatever its ``Feedback-Type`` (``abuse`` in practice).
* Anything else is :data:`UNREADABLE` and is kept for an operator.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message

DSN = "dsn"
COMPLAINT = "complaint"
UNREADABLE = "unreadable"
_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})")


@dataclass(frozen=True)
class Failure:
    status: str  # the enhanced status code, such as 5.1.1
    diagnostic: str | None = None  # the remote server's words, as reported


@dataclass(frozen=True)
class Report:
    kind: str  # DSN, COMPLAINT or UNREADABLE
    failures: tuple[Failure, ...] = ()  # a DSN's failed recipients
    feedback_type: str | None = None  # a complaint's Feedback-Type
    why: str = ""  # for UNREADABLE: what was missing
    extra: dict[str, str] = field(default_factory=dict)


def _report_type(message: Message) -> str | None:
    if message.get_content_type() != "multipart/report":
        return None
    value = message.get_param("report-type")
    return str(value).lower() if isinstance(value, str) else None


def _delivery_status_blocks(message: Message) -> list[Message]:
    for part in message.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            payload = part.get_payload()
            if isinstance(payload, list):
                return [block for block in payload if isinstance(block, Message)]
            if isinstance(payload, str):  # some parsers leave it as text: read it as headers
                return [
                    email.message_from_string(chunk, policy=policy.default)
                    for chunk in re.split(r"\r?\n\r?\n", payload.strip())
                    if chunk.strip()
                ]
    return []


def read(raw: bytes) -> Report:
    """What ``raw`` (a whole message) reports."""
    message: EmailMessage = email.message_from_bytes(raw, policy=policy.default)
    kind = _report_type(message)
    if kind == "feedback-report":
        for part in message.walk():
            if part.get_content_type() == "message/feedback-report":
                blocks = part.get_payload()
                first = blocks[0] if isinstance(blocks, list) and blocks else None
                feedback = (
                    str(first.get("Feedback-Type", "abuse"))
                    if isinstance(first, Message)
                    else "abuse"
                )
                return Report(COMPLAINT, feedback_type=feedback.strip().lower())
        return Report(UNREADABLE, why="a feedback report without its message/feedback-report part")
    if kind in ("delivery-status", "global-delivery-status") or any(
        part.get_content_type() == "message/delivery-status" for part in message.walk()
    ):
        failures = []
        for block in _delivery_status_blocks(message)[1:]:  # the first holds per-message fields
            action = str(block.get("Action", "")).strip().lower()
            found = _STATUS.match(str(block.get("Status", "")))
            if action == "failed" and found:
                diagnostic = block.get("Diagnostic-Code")
                failures.append(
                    Failure(found.group(1), str(diagnostic).strip() if diagnostic else None)
                )
        if not _delivery_status_blocks(message):
            return Report(UNREADABLE, why="a delivery report without per-recipient fields")
        return Report(DSN, failures=tuple(failures))
    return Report(UNREADABLE, why="neither a delivery status notification nor a feedback report")
