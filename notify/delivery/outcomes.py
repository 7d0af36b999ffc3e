"""How one claimed message ends when it does not simply go out: written once for the
transactional and the campaign path.

* A template that cannot be rendered fails the message at once (retrying cannot help).
* A permanent relay error (5xx) fails it at once; a hard bounce (5.1.1, 5.1.2, 5.2.1) also puts
  the address on the suppression list, so no later message tries it.
* A transient relay error (4xx, a refused or dropped connection) puts the row back in
  ``queued`` with a due time from the backoff policy, until ``NOTIFY_MAX_ATTEMPTS`` attempts
  are used; then it fails.
* A row none of the process's data keys decrypts is retried the same way: a worker started
  without a key just added reads it once it has that key; a key dropped for good fails it.

Data functions take the session first and never commit; the row must be ``sending`` (claimed by
the caller), or nothing is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from jinja2 import TemplateError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.db import SessionFactory
from notify.delivery import outbox
from notify.delivery.transport import DeliveryError
from notify.masking import mask_addresses
from notify.message.jobs import Claimed
from notify.message.mime import HeaderInjectionError
from notify.models import ConsentSource, SuppressionReason
from notify.people import suppressions
from notify.people.consent import Origin

log = logging.getLogger(__name__)

# What rendering a template and building its MIME can raise for bad content or data.
COMPOSE_ERRORS = (TemplateError, HeaderInjectionError, KeyError, ValueError)
UNDECRYPTABLE = "undecryptable: no data key of this worker decrypts the message or its recipient"
# What a database that is down, restarting or unreachable raises.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
FIRST_RETRY_SECONDS = 0.2
LONGEST_RETRY_SECONDS = 5.0
T = TypeVar("T")


class Result(StrEnum):
    SKIPPED = "skipped"  # not ours to send: another delivery of the task already has it
    SENT = "sent"
    SUPPRESSED = "suppressed"
    FAILED = "failed"
    RETRY = "retry"
    DEFERRED = "deferred"  # held back by the person's quiet hours: due at their end


@dataclass(frozen=True)
class Outcome:
    result: Result
    reason: str | None = None
    retry_in: float = 0.0  # seconds, for RETRY
    relay_unreachable: bool = False  # the relay could not be reached or dropped the connection
    category: str | None = None  # for RETRY: whose lane the next attempt is published on
    attempted: bool = True  # False: given back unsent (out of time, interrupted, relay down)


def record_compose_error(session: Session, job: Claimed, error: Exception) -> Outcome:
    """The template could not be rendered for this message: failed, with the error as reason."""
    problem = mask_addresses(f"template error: {type(error).__name__}: {error}")[:500]
    outbox.mark_failed(session, job.id, problem)
    log.error("notification %s failed to compose: %s", job.id, type(error).__name__)
    return Outcome(Result.FAILED, problem)


def record_delivery_error(
    session: Session,
    settings: Settings,
    job: Claimed,
    error: DeliveryError,
    retry_delay: Callable[[int], float],
) -> Outcome:
    """The relay refused the message or could not be reached: fail it, or schedule a retry."""
    if error.permanent:
        outbox.mark_failed(session, job.id, error.reason, bounced=error.hard_bounce)
        if error.hard_bounce and job.email:
            suppressions.suppress(
                session,
                settings.hash_key,
                job.email,
                SuppressionReason.HARD_BOUNCE,
                Origin(ConsentSource.BOUNCE, notification_id=job.id, campaign_id=job.campaign_id),
                detail=error.reason,
            )
        log.warning("notification %s failed permanently: %s", job.id, error.reason)
        return Outcome(Result.FAILED, error.reason)
    unreachable = error.smtp_code is None  # no reply at all: the relay, not this message
    if job.attempts >= settings.max_attempts:
        reason = f"gave up after {job.attempts} attempts: {error.reason}"
        outbox.mark_failed(session, job.id, reason)
        log.error("notification %s %s", job.id, reason)
        return Outcome(Result.FAILED, reason, relay_unreachable=unreachable)
    delay = retry_delay(job.attempts)
    outbox.schedule_retry(session, job.id, error.reason, delay)
    log.info("notification %s will retry in %.1fs: %s", job.id, delay, error.reason)
    return Outcome(
        Result.RETRY, error.reason, delay, relay_unreachable=unreachable, category=job.category
    )


def record_undecryptable(
    session: Session,
    settings: Settings,
    row: outbox.Undecryptable,
    retry_delay: Callable[[int], float],
) -> Outcome:
    """A claimed row none of this process's data keys decrypts: retried with the backoff of a
    transient relay error until ``settings.max_attempts`` attempts are used, then failed."""
    extra = {"notification_id": row.id, "request_id": row.request_id}
    if row.attempts >= settings.max_attempts:
        reason = f"gave up after {row.attempts} attempts: {UNDECRYPTABLE}"
        outbox.mark_failed(session, row.id, reason)
        log.error("notification %s %s", row.id, reason, extra=extra)
        return Outcome(Result.FAILED, reason)
    delay = retry_delay(row.attempts)
    outbox.schedule_retry(session, row.id, UNDECRYPTABLE, delay)
    log.error("notification %s will retry in %.1fs: %s", row.id, delay, UNDECRYPTABLE, extra=extra)
    return Outcome(Result.RETRY, UNDECRYPTABLE, delay, category=row.category)


def commit_until(
    sessions: SessionFactory,
    write: Callable[[Session], T],
    *,
    deadline: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``write`` in a transaction of its own and commit it, retrying while the database is
    unavailable (0.2 s, doubling, at most 5 s apart) until ``deadline`` (``time.monotonic()``).

    For outcomes that must not be forgotten, such as "the relay accepted this message": a
    database outage shorter than the time left keeps the outcome. Raises the last database
    error once the deadline has passed.
    """
    delay = FIRST_RETRY_SECONDS
    while True:
        try:
            with sessions.begin() as session:
                return write(session)
        except DATABASE_UNAVAILABLE as error:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            pause = min(delay, remaining)  # the last try lands on the deadline, not before it
            log.warning(
                "database unavailable while recording %s; retrying in %.1fs: %s",
                what,
                pause,
                type(error).__name__,
            )
            sleep(pause)
            delay = min(delay * 2, LONGEST_RETRY_SECONDS)
