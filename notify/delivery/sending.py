"""Delivers transactional notifications: claim, check, compose, hand to the transport, record
the end; for a group of ids at once, so one task, one claim and one write serve many messages.

:func:`deliver_many` owns its transactions (the claim is committed before the relay is contacted,
and the outcome after), so the rows are consistent whatever fails in between. It never raises
for a delivery problem; it returns an :class:`~notify.delivery.outcomes.Outcome` and the Celery
task acts on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

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
    record_undecryptable,
)
from notify.delivery.transport import DeliveryError, Transport
from notify.masking import mask_email
from notify.message import links
from notify.message.composing import compose
from notify.message.jobs import Claimed
from notify.models.base import utcnow
from notify.observability import metrics
from notify.people import decisions, eligibility, quiet_hours

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
        paused=job.paused,
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
    """Send ``notification_id`` once; safe to call again for the same id at any time
    (:func:`deliver_many` for one id)."""
    outcomes = deliver_many(
        sessions, transport, settings, [notification_id], retry_delay=retry_delay
    )
    return outcomes[notification_id]


def deliver_many(
    sessions: SessionFactory,
    transport: Transport,
    settings: Settings,
    notification_ids: Sequence[str],
    *,
    retry_delay: Callable[[int], float],
) -> dict[str, Outcome]:
    """Send each of ``notification_ids`` once, over one relay connection; safe to call again
    for any of them at any time. Returns each id's outcome.

    * All are claimed in one statement, and the eligibility check runs on what that claim read:
      a message goes out at most the time of the messages before it in this call after its
      check (``NOTIFY_SEND_BATCH_SIZE`` bounds how many that can be).
    * A message none of this process's data keys decrypts is retried like a transient relay
      error (:func:`~notify.delivery.outcomes.record_undecryptable`); the others go on.
    * Messages the relay accepted are recorded ``sent`` in groups of ``NOTIFY_SEND_COMMIT_EVERY``,
      and always before this function returns. A process killed in between leaves at most that
      many accepted messages ``sending``; the sweeper sends them again. Refusals, retries and
      template errors are recorded per message at once.
    * Optional mail claimed inside the person's quiet hours goes back to ``queued``, due at
      their end (outcome ``DEFERRED``); the sweeper publishes it at most
      ``NOTIFY_SWEEP_QUEUED_AFTER_SECONDS`` plus one sweep interval after that.
    * Transient relay errors put the row back in ``queued`` with a due time from
      ``retry_delay(attempts)`` until ``settings.max_attempts`` is used (outcome ``RETRY``);
      permanent ones fail it at once (:mod:`notify.delivery.outcomes`). When the relay cannot be
      reached at all, the messages not yet tried are given back unsent with the same delay.
    * Once the relay has answered, its answer is recorded even across a database outage: the
      write is retried until ``NOTIFY_SEND_ATTEMPT_SECONDS`` after the claim, the longest an
      attempt may live (the sweeper leaves a ``sending`` row alone for longer than that).
      Messages that could not be started in time are given back unsent (``RETRY`` in 0 s).
    """
    # Leave room before the hard time limit for one more connection attempt and statement.
    margin = settings.database_connect_timeout_seconds + RECORDING_MARGIN_SECONDS
    deadline = time.monotonic() + settings.send_attempt_seconds - margin
    outcomes: dict[str, Outcome] = dict.fromkeys(notification_ids, Outcome(Result.SKIPPED))
    sendable: list[Claimed] = []
    categories: dict[str, str] = {}  # of the claimed messages, for the metrics
    verdicts: dict[str, str | None] = {}  # of the claimed messages, for their explanations
    held: dict[str, datetime] = {}  # held back by quiet hours, until when
    with sessions.begin() as session:
        now = utcnow()
        group = outbox.claim_many(session, notification_ids, sending_domain=settings.sending_domain)
        for unreadable in group.undecryptable:
            categories[unreadable.id] = unreadable.category
            outcomes[unreadable.id] = record_undecryptable(
                session, settings, unreadable, retry_delay
            )
        for job in group.ready:
            categories[job.id] = job.category
            reason = verdicts[job.id] = why_blocked(settings, job)
            until = None
            if reason is None:
                start, end = job.quiet_hours
                zone = job.time_zone or settings.default_timezone
                until = quiet_hours.holds_until(job.category, start, end, zone, now)
            if until is not None:
                held[job.id] = until
                outcomes[job.id] = Outcome(Result.DEFERRED, "quiet hours", attempted=False)
            elif reason is None:
                sendable.append(job)
            else:
                outbox.mark_suppressed(session, job.id, reason)
                outcomes[job.id] = Outcome(Result.SUPPRESSED, reason)
                log.info(
                    "notification %s not sent: %s",
                    job.id,
                    reason,
                    extra={"notification_id": job.id, "request_id": job.request_id},
                )
        outbox.release_until(session, held)
        decisions.record_claims(
            session,
            verdicts,
            settings.default_subscriptions,
            now=now,
            default_zone=settings.default_timezone,
            held=held,
        )
    accepted = _AcceptedMessages(sessions, settings.send_commit_every, deadline)
    index = -1  # the message being handled
    try:
        for index, job in enumerate(sendable):
            # The first message is always tried (as a one-message task would be); a later one
            # only while a whole relay exchange still fits before the deadline.
            if index and time.monotonic() + settings.smtp_timeout_seconds > deadline:
                _give_back(sessions, sendable[index:], outcomes, "out of time", delay=0.0)
                break
            outcome = _send_one(sessions, transport, settings, job, retry_delay, deadline)
            if outcome is None:
                accepted.add(job)
                outcomes[job.id] = Outcome(Result.SENT)
                continue
            outcomes[job.id] = outcome
            if outcome.relay_unreachable:  # the next ones would wait on it too: try them later
                delay = outcome.retry_in or retry_delay(1)
                _give_back(sessions, sendable[index + 1 :], outcomes, outcome.reason, delay=delay)
                break
    except BaseException:
        # A time limit, a database error or a bug interrupted the group: give back the messages
        # after the one being handled (never that one: the relay may have it), or they would
        # wait for the sweeper with an attempt counted. Best effort: the sweeper is the net.
        untried = [
            job for job in sendable[index + 1 :] if outcomes[job.id].result is Result.SKIPPED
        ]
        try:
            _give_back(sessions, untried, outcomes, "interrupted", delay=0.0)
        except Exception as error:
            log.warning("could not give back %d message(s): %s", len(untried), type(error).__name__)
        raise
    finally:
        try:
            accepted.record()  # also when a time limit or a bug interrupts the loop
        finally:
            _count_unsent(outcomes, categories)
    return outcomes


_UNSENT_OUTCOMES = {
    Result.SUPPRESSED: "suppressed",
    Result.FAILED: "failed",
    Result.RETRY: "retried",
}


def _count_unsent(outcomes: dict[str, Outcome], categories: dict[str, str]) -> None:
    """Metrics for the messages of a call that did not go (sent ones count as recorded);
    messages given back without an attempt are not counted."""
    for notification_id, outcome in outcomes.items():
        name = _UNSENT_OUTCOMES.get(outcome.result)
        if name is not None and outcome.attempted:
            suppressed = outcome.result is Result.SUPPRESSED
            reason = (outcome.reason or "") if suppressed else ""
            metrics.count_notification(categories.get(notification_id, ""), name, reason)


def _send_one(
    sessions: SessionFactory,
    transport: Transport,
    settings: Settings,
    job: Claimed,
    retry_delay: Callable[[int], float],
    deadline: float,
) -> Outcome | None:
    """Compose and hand one claimed message to the relay: None when the relay accepted it (the
    caller records it), else the recorded outcome."""
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
    return None


class _AcceptedMessages:
    """Messages the relay accepted, written ``sent`` every ``every`` of them and on
    :meth:`record`; the write survives a database outage until ``deadline``."""

    def __init__(self, sessions: SessionFactory, every: int, deadline: float) -> None:
        self.sessions = sessions
        self.every = every
        self.deadline = deadline
        self.pending: list[tuple[Claimed, datetime]] = []

    def add(self, job: Claimed) -> None:
        self.pending.append((job, utcnow()))
        if len(self.pending) >= self.every:
            self.record()

    def record(self) -> None:
        if not self.pending:
            return
        jobs, sent_at = self.pending, {job.id: at for job, at in self.pending}
        commit_until(
            self.sessions,
            lambda session: outbox.mark_sent_many(session, sent_at),
            deadline=self.deadline,
            what=f"the relay's acceptance of {len(sent_at)} message(s)",
        )
        self.pending = []
        for job, at in jobs:
            if job.created_at is not None:
                metrics.observe_delivered(job.category, (at - job.created_at).total_seconds())
            log.info(
                "notification %s sent to %s",
                job.id,
                mask_email(job.email or ""),
                extra={"notification_id": job.id, "request_id": job.request_id},
            )


def _give_back(
    sessions: SessionFactory,
    jobs: Sequence[Claimed],
    outcomes: dict[str, Outcome],
    reason: str | None,
    *,
    delay: float,
) -> None:
    """Claimed messages this call will not try: back to ``queued``, their attempt not counted,
    to be published again in ``delay`` seconds."""
    if not jobs:
        return
    with sessions.begin() as session:
        outbox.release(session, [job.id for job in jobs])
    for job in jobs:
        outcomes[job.id] = Outcome(
            Result.RETRY, reason, delay, category=job.category, attempted=False
        )
    log.info(
        "%d claimed message(s) given back unsent, again in %.1fs: %s",
        len(jobs),
        delay,
        reason,
    )


def _envelope_sender(settings: Settings, job: Claimed) -> str:
    return links.envelope_sender(settings, job.id, job.category)
