"""Delivers one notification: claim, check, compose, hand to the transport, record the end.

:func:`deliver` owns its transactions (the claim is committed before the relay is contacted,
and the outcome after), so the rows are consistent whatever fails in between. It never raises
for a delivery problem; it returns an :class:`Outcome` and the Celery task acts on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from enum import StrEnum

from jinja2 import TemplateError

from notify.categories import get_category
from notify.config import Settings
from notify.db import SessionFactory
from notify.delivery import outbox
from notify.delivery.transport import DeliveryError, Transport
from notify.masking import mask_email
from notify.message.composing import compose
from notify.message.jobs import Claimed
from notify.message.mime import HeaderInjectionError
from notify.models import ConsentSource, SuppressionReason
from notify.models.base import utcnow
from notify.people import suppressions
from notify.people.consent import Origin

log = logging.getLogger(__name__)


class Result(StrEnum):
    SKIPPED = "skipped"  # not queued any more: another delivery of the task already has it
    SENT = "sent"
    SUPPRESSED = "suppressed"
    FAILED = "failed"
    RETRY = "retry"


@dataclass(frozen=True)
class Outcome:
    result: Result
    reason: str | None = None
    retry_in: float = 0.0


def suppression_reason(settings: Settings, job: Claimed) -> str | None:
    """Why this message must not go out now, or None.

    Decided on what the claim read, in the same transaction, right before the relay is
    contacted: an unsubscribe committed while the message waited in the queue is honoured.
    """
    if job.erased:
        return "erased"
    if not job.email:
        return "no_address"
    category = get_category(job.category)
    if job.suppression is not None and suppressions.blocks(job.suppression, category.essential):
        return suppressions.SEND_TIME_REASON.get(SuppressionReason(job.suppression), "suppressed")
    if category.essential:
        return None
    wanted = (
        job.subscribed
        if job.subscribed is not None
        else job.category in settings.default_subscriptions
    )
    return None if wanted else "unsubscribed"


def deliver(
    sessions: SessionFactory,
    transport: Transport,
    settings: Settings,
    notification_id: str,
    *,
    retry_delay: Callable[[int], float],
) -> Outcome:
    """Send ``notification_id`` once; safe to call again for the same id at any time.

    Transient relay errors put the row back in ``queued`` with a due time from
    ``retry_delay(attempts)`` until ``settings.max_attempts`` is used; permanent ones (5xx,
    template errors) fail it at once.
    """
    with sessions.begin() as session:
        job = outbox.claim(session, notification_id, sending_domain=settings.sending_domain)
        if job is None:
            return Outcome(Result.SKIPPED)
        reason = suppression_reason(settings, job)
        if reason is not None:
            outbox.mark_suppressed(session, job.id, reason)
            return Outcome(Result.SUPPRESSED, reason)
    try:
        message = compose(settings, job, now=utcnow())
    except (TemplateError, HeaderInjectionError, KeyError, ValueError) as error:
        problem = f"template error: {type(error).__name__}: {error}"[:500]
        with sessions.begin() as session:
            outbox.mark_failed(session, job.id, problem)
        log.error("notification %s failed to compose: %s", job.id, problem)
        return Outcome(Result.FAILED, problem)
    try:
        transport.send(
            message, envelope_from=_envelope_sender(settings, job), envelope_to=job.email or ""
        )
    except DeliveryError as error:
        return _record_failure(sessions, settings, job, error, retry_delay)
    with sessions.begin() as session:
        outbox.mark_sent(session, job.id)
    log.info("notification %s sent to %s", job.id, mask_email(job.email or ""))
    return Outcome(Result.SENT)


def _envelope_sender(settings: Settings, job: Claimed) -> str:
    return parseaddr(settings.sender_for(job.category))[1]


def _record_failure(
    sessions: SessionFactory,
    settings: Settings,
    job: Claimed,
    error: DeliveryError,
    retry_delay: Callable[[int], float],
) -> Outcome:
    with sessions.begin() as session:
        if error.permanent:
            outbox.mark_failed(session, job.id, error.reason)
            if error.hard_bounce and job.email:
                origin = Origin(ConsentSource.BOUNCE, notification_id=job.id)
                suppressions.suppress(
                    session,
                    settings.hash_key,
                    job.email,
                    SuppressionReason.HARD_BOUNCE,
                    origin,
                    detail=error.reason,
                )
            log.warning("notification %s failed permanently: %s", job.id, error.reason)
            return Outcome(Result.FAILED, error.reason)
        if job.attempts >= settings.max_attempts:
            reason = f"gave up after {job.attempts} attempts: {error.reason}"
            outbox.mark_failed(session, job.id, reason)
            log.error("notification %s %s", job.id, reason)
            return Outcome(Result.FAILED, reason)
        delay = retry_delay(job.attempts)
        outbox.schedule_retry(session, job.id, error.reason, delay)
    log.info("notification %s will retry in %.1fs: %s", job.id, delay, error.reason)
    return Outcome(Result.RETRY, error.reason, delay)
