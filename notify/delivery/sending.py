"""Delivers one transactional notification: claim, check, compose, hand to the transport,
record the end.

:func:`deliver` owns its transactions (the claim is committed before the relay is contacted,
and the outcome after), so the rows are consistent whatever fails in between. It never raises
for a delivery problem; it returns an :class:`~notify.delivery.outcomes.Outcome` and the Celery
task acts on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from email.utils import parseaddr

from notify.config import Settings
from notify.db import SessionFactory
from notify.delivery import outbox
from notify.delivery.outcomes import (
    COMPOSE_ERRORS,
    Outcome,
    Result,
    commit_until,
    record_compose_error,
    record_delivery_error,
)
from notify.delivery.transport import DeliveryError, Transport
from notify.masking import mask_email
from notify.message.composing import compose
from notify.message.jobs import Claimed
from notify.models.base import utcnow
from notify.people import eligibility

log = logging.getLogger(__name__)
# Besides a connection attempt, what the last write before the hard time limit may take.
RECORDING_MARGIN_SECONDS = 2.0


def why_blocked(settings: Settings, job: Claimed) -> str | None:
    """Why this message must not go out now (:func:`notify.people.eligibility.why_not`), or None.

    Decided on what the claim read, in the same transaction, right before the relay is
    contacted: an unsubscribe committed while the message waited in the queue is honoured.
    """
    facts = eligibility.facts_for(
        job.category,
        settings.default_subscriptions,
        erased=job.erased,
        has_address=job.email is not None,
        suppression=job.suppression,
        stored_choice=job.subscribed,
    )
    blocked = eligibility.why_not(facts)
    return None if blocked is None else blocked.value


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
    template errors) fail it at once (:mod:`notify.delivery.outcomes`).

    Once the relay has answered, its answer is recorded even across a database outage: the
    write is retried until ``NOTIFY_SEND_ATTEMPT_SECONDS`` after the claim, the longest an
    attempt may live (the sweeper leaves a ``sending`` row alone for longer than that).
    """
    # Leave room before the hard time limit for one more connection attempt and statement.
    margin = settings.database_connect_timeout_seconds + RECORDING_MARGIN_SECONDS
    deadline = time.monotonic() + settings.send_attempt_seconds - margin
    with sessions.begin() as session:
        job = outbox.claim(session, notification_id, sending_domain=settings.sending_domain)
        if job is None:
            return Outcome(Result.SKIPPED)
        reason = why_blocked(settings, job)
        if reason is not None:
            outbox.mark_suppressed(session, job.id, reason)
            return Outcome(Result.SUPPRESSED, reason)
    try:
        message = compose(settings, job, now=utcnow())
    except COMPOSE_ERRORS as error:
        with sessions.begin() as session:
            return record_compose_error(session, job, error)
    try:
        transport.send(
            message, envelope_from=_envelope_sender(settings, job), envelope_to=job.email or ""
        )
    except DeliveryError as error:
        refusal = error
        return commit_until(
            sessions,
            lambda session: record_delivery_error(session, settings, job, refusal, retry_delay),
            deadline=deadline,
            what=f"the relay's refusal of {job.id}",
        )
    commit_until(
        sessions,
        lambda session: outbox.mark_sent(session, job.id),
        deadline=deadline,
        what=f"the relay's acceptance of {job.id}",
    )
    log.info("notification %s sent to %s", job.id, mask_email(job.email or ""))
    return Outcome(Result.SENT)


def _envelope_sender(settings: Settings, job: Claimed) -> str:
    return parseaddr(settings.sender_for(job.category))[1]
