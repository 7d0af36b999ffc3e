"""Sends one campaign batch over the worker's SMTP connection.

Guarantees:
* a lease on the batch row means one worker at a time sends it. A live holder renews it from
  a heartbeat thread every third of ``NOTIFY_CAMPAIGN_BATCH_LEASE_SECONDS``, so a worker that
  dies loses it within that many seconds and the dispatcher hands the batch to another. The
  lease is fenced by the batch's attempt number, so a holder whose lease was taken over stops
  at its next message;
* right before each group, the claim re-checks the campaign status, the lease and the
  eligibility rule (:mod:`notify.people.eligibility`: preference, suppression, erasure) in the
  same statement: a pause stops the batch before its next group, an unsubscribe that lands
  mid-campaign is honoured;
* messages are claimed (``sending``) in groups of up to ``NOTIFY_CAMPAIGN_COMMIT_EVERY``
  (:func:`group_size`: fewer for a slow rate limit) and recorded ``sent`` in the next group's
  transaction, so a crash re-sends at most one group, and a pause, cancel or unsubscribe acts
  within one group;
* a batch starts no new message after ``NOTIFY_CAMPAIGN_BATCH_SECONDS``: what is left is picked
  up by the dispatcher, so a rate-limited campaign never outlives a task time limit.

Every statement here is SQLAlchemy Core that runs unchanged on PostgreSQL and SQLite.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from notify.campaigns.rate_limit import RateLimiter
from notify.campaigns.yielding import EssentialFirst
from notify.config import Settings
from notify.crypto import UndecryptableError
from notify.db import SessionFactory, unindexed
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
from notify.message import links
from notify.message.composing import BatchComposer
from notify.message.jobs import Claimed
from notify.message.personal import PersonalFields
from notify.models import (
    BatchStatus,
    Campaign,
    CampaignBatch,
    CampaignStatus,
    Notification,
    NotificationStatus,
    Recipient,
)
from notify.models.base import opened, stored, utcnow
from notify.models.notifications import with_ids
from notify.observability import metrics
from notify.people import decisions, eligibility, quiet_hours, recipients
from notify.people.decisions import CampaignState

log = logging.getLogger(__name__)
IN_FLIGHT = NotificationStatus.in_flight()


@dataclass
class BatchReport:
    batch_id: int
    sent: int = 0
    suppressed: int = 0
    failed: int = 0
    retrying: int = 0
    deferred: int = 0  # held back by the recipient's quiet hours, due again at their end
    stopped: str | None = None  # why it stopped early: paused, cancelled, time, lease lost
    skipped: bool = False
    reasons: dict[str, int] = field(default_factory=dict)
    gave_way_seconds: float = 0.0  # spent waiting for essential mail to be taken

    def count_suppressed(self, reason: str, how_many: int = 1) -> None:
        self.suppressed += how_many
        self.reasons[reason] = self.reasons.get(reason, 0) + how_many


@dataclass(frozen=True)
class BatchScope:
    """What every statement of one batch run needs: whose batch, which lease, which rule."""

    batch_id: int
    fence: int
    campaign_id: int
    category: str
    defaults: frozenset[str]
    default_zone: str = "UTC"  # for people without a time zone (NOTIFY_DEFAULT_TIMEZONE)


def claim_batch(
    session: Session, batch_id: int, *, now: datetime, lease: timedelta
) -> tuple[int, int] | None:
    """Take the batch's lease: ``(campaign id, fence)``, or None if it is done or held.

    The fence is the batch's attempt number after this claim. Every later write of this holder
    requires it, so a holder whose lease expired and was taken over stops at its next message
    instead of sending alongside the new one.
    """
    claimable = or_(
        CampaignBatch.status.in_([BatchStatus.ENQUEUED, BatchStatus.PENDING]),
        and_(CampaignBatch.status == BatchStatus.RUNNING, CampaignBatch.lease_until < now),
    )
    row = session.execute(
        update(CampaignBatch)
        .where(CampaignBatch.id == batch_id, claimable)
        .values(
            status=BatchStatus.RUNNING,
            lease_until=now + lease,
            attempts=CampaignBatch.attempts + 1,
            updated_at=now,
        )
        .returning(CampaignBatch.campaign_id, CampaignBatch.attempts)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    return None if row is None else (int(row[0]), int(row[1]))


def _lease_held(scope: BatchScope) -> ColumnElement[bool]:
    return exists().where(
        CampaignBatch.id == scope.batch_id,
        CampaignBatch.attempts == scope.fence,
        CampaignBatch.status == BatchStatus.RUNNING,
    )


def _campaign_status(scope: BatchScope) -> Any:
    return select(Campaign.status).where(Campaign.id == scope.campaign_id).scalar_subquery()


def _blocked_for_row(scope: BatchScope, now: datetime) -> Any:
    """The eligibility rule for the recipient of the notification row in the enclosing
    statement: NULL if they may get the campaign at ``now``, else why not."""
    return (
        select(eligibility.blocked_reason(scope.category, scope.defaults, now))
        .where(Recipient.id == Notification.recipient_id)
        .scalar_subquery()
    )


def suppress_ineligible(session: Session, scope: BatchScope, now: datetime) -> dict[str, str]:
    """Mark every due row of the batch whose recipient may not get it ``suppressed``, with the
    reason, in one statement; returns each such row's id and reason."""
    blocked = _blocked_for_row(scope, now)
    rows = session.execute(
        update(Notification)
        .where(
            Notification.batch_id == scope.batch_id,
            unindexed(Notification.status).in_(IN_FLIGHT),
            Notification.next_attempt_at <= now,
            blocked.is_not(None),
        )
        .values(status=NotificationStatus.SUPPRESSED, reason=blocked, updated_at=now)
        .returning(Notification.id, Notification.reason)
        .execution_options(synchronize_session=False)
    ).all()
    return {str(row[0]): str(row[1]) for row in rows}


@dataclass(frozen=True)
class DueRow:
    """A batch's message that is due, with what its recipient's copy needs."""

    id: str
    recipient_id: int
    email: str
    public_id: str
    locale: str | None
    time_zone: str | None
    personal: PersonalFields
    quiet_hours: tuple[str | None, str | None] = (None, None)
    readable: bool = True  # False: no data key of this process decrypts the recipient


def _due_rows(session: Session, batch_id: int, now: datetime) -> list[DueRow]:
    """The batch's due messages in recipient order; a row whose recipient none of this
    process's data keys decrypts comes with ``readable`` False (it is claimed like the others,
    and :func:`notify.delivery.outcomes.record_undecryptable` records it).

    Two key lookups rather than one join: as a join, PostgreSQL hashed the whole recipients
    table for each batch of a few hundred (``unindexed``: the batch's own index finds the
    rows, not the lane-wide status index)."""
    due = session.execute(
        select(Notification.id, Notification.recipient_id).where(
            Notification.batch_id == batch_id,
            unindexed(Notification.status).in_(IN_FLIGHT),
            Notification.next_attempt_at <= now,
        )
    ).all()
    if not due:
        return []
    people = {
        person.id: person
        for person in session.execute(
            select(
                Recipient.id,
                stored(Recipient.email),
                Recipient.public_id,
                Recipient.locale,
                Recipient.timezone,
                *recipients.STORED_PERSONAL_FIELDS,
                Recipient.quiet_hours_start,
                Recipient.quiet_hours_end,
            ).where(Recipient.id.in_([recipient_id for _, recipient_id in due]))
        )
    }
    rows = []
    for notification_id, recipient_id in due:
        person = people[recipient_id]
        if person.email is None:  # suppress_ineligible, earlier in the transaction, took these
            continue
        try:
            email = opened(Recipient.email, person.email)
            personal = recipients.personal_fields_of(person)
        except UndecryptableError:
            email, personal, readable = "", PersonalFields(), False
        else:
            readable = True
        rows.append(
            DueRow(
                id=str(notification_id),
                recipient_id=int(recipient_id),
                email=email,
                public_id=person.public_id,
                locale=person.locale,
                time_zone=person.timezone,
                personal=personal,
                quiet_hours=(person.quiet_hours_start, person.quiet_hours_end),
                readable=readable,
            )
        )
    return sorted(rows, key=lambda row: row.recipient_id)


def claim_message(
    session: Session, scope: BatchScope, notification_id: str, sending_domain: str, now: datetime
) -> tuple[int, str] | None:
    """:func:`claim_messages` for one row: ``(attempts, Message-ID)``, or None."""
    claimed = claim_messages(session, scope, [notification_id], sending_domain, now)
    return claimed.get(notification_id)


def claim_messages(
    session: Session,
    scope: BatchScope,
    notification_ids: Sequence[str],
    sending_domain: str,
    now: datetime,
) -> dict[str, tuple[int, str]]:
    """Claim rows for sending if the lease is still ours, the campaign is running and each
    recipient may get it now: ``{id: (attempts, Message-ID)}`` for those claimed. One
    statement; each row keeps the Message-ID of its first claim."""
    if not notification_ids:
        return {}
    claimed = session.execute(
        update(Notification)
        .where(
            with_ids(list(notification_ids)),
            unindexed(Notification.status).in_(IN_FLIGHT),
            _lease_held(scope),
            _campaign_status(scope) == CampaignStatus.RUNNING,
            _blocked_for_row(scope, now).is_(None),
        )
        .values(
            status=NotificationStatus.SENDING,
            attempts=Notification.attempts + 1,
            claimed_at=now,
            updated_at=now,
            message_id=outbox.message_id_at_first_claim(notification_ids, sending_domain),
        )
        .returning(Notification.id, Notification.attempts, Notification.message_id)
        .execution_options(synchronize_session=False)
    ).all()
    return {str(row[0]): (int(row[1]), str(row[2])) for row in claimed}


def hold_quiet_hours(
    session: Session,
    scope: BatchScope,
    group: Sequence[DueRow],
    claimed: dict[str, tuple[int, str]],
    now: datetime,
) -> dict[str, datetime]:
    """Give back the claimed rows whose recipient is inside their quiet hours, each due at the
    end of their window (:func:`notify.people.quiet_hours.holds_until`), and take them out of
    ``claimed``: the rest of the group goes on, and the batch is due again at its earliest
    held row. Returns each held row's due time."""
    held: dict[str, datetime] = {}
    for row in group:
        if row.id not in claimed:
            continue
        start, end = row.quiet_hours
        zone = row.time_zone or scope.default_zone
        until = quiet_hours.holds_until(scope.category, start, end, zone, now)
        if until is not None:
            held[row.id] = until
    outbox.release_until(session, held, only_if=_lease_held(scope))
    for notification_id in held:
        del claimed[notification_id]
    return held


def release_untried(session: Session, scope: BatchScope, notification_ids: Sequence[str]) -> int:
    """Give back rows this holder claimed and never handed to the relay
    (:func:`notify.delivery.outbox.release`), only while the lease is still this holder's: once
    another holder has the batch, those rows are its to send."""
    return outbox.release(session, notification_ids, only_if=_lease_held(scope))


def group_size(commit_every: int, per_second: float | None) -> int:
    """How many messages a batch claims, and records, in one transaction: at most
    ``commit_every``, and for a rate-limited campaign at most what the rate lets out in a
    quarter of a second, so a pause, cancel or unsubscribe acts within that time too."""
    if per_second:
        return max(1, min(commit_every, int(per_second / 4)))
    return commit_every


@dataclass(frozen=True)
class Refusal:
    """Why :func:`claim_message` found nothing to claim."""

    stop: str | None  # the batch must stop: "lease lost", or the campaign's status
    blocked: str | None  # the recipient may not get it: the eligibility reason


def why_unclaimed(
    session: Session, scope: BatchScope, notification_id: str, now: datetime
) -> Refusal:
    """Read what refused a claim (rare: a pause, a cancel, an unsubscribe, a lost lease)."""
    found = session.execute(
        select(
            _lease_held(scope),
            _campaign_status(scope),
            select(eligibility.blocked_reason(scope.category, scope.defaults, now))
            .join(Notification, Notification.recipient_id == Recipient.id)
            .where(with_ids([notification_id]))
            .scalar_subquery(),
        )
    ).one()
    held, status, blocked = bool(found[0]), found[1], found[2]
    if not held:
        return Refusal("lease lost", None)
    if status != CampaignStatus.RUNNING:
        return Refusal(str(status or "deleted"), None)
    return Refusal(None, blocked)


def renew_lease(session: Session, scope: BatchScope, until: datetime) -> bool:
    """Extend the lease to ``until`` if it is still this holder's; False if it was lost."""
    result = session.execute(
        update(CampaignBatch)
        .where(
            CampaignBatch.id == scope.batch_id,
            CampaignBatch.attempts == scope.fence,
            CampaignBatch.status == BatchStatus.RUNNING,
        )
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


class LeaseHeartbeat:
    """Renews a batch's lease from a thread of its own while the batch is being sent.

    Every ``lease / 3`` seconds it commits a new expiry ``lease`` from now, in its own session,
    so a slow message or a long rate-limit wait never lets a live holder's lease run out,
    while a dead holder's runs out within ``lease``. If a renewal finds the lease taken over,
    :attr:`lost` is set and the heartbeat stops; the sender stops at its next claim anyway
    (the claim checks the fence). A database error skips one beat.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        scope: BatchScope,
        lease: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._scope = scope
        self._lease = lease
        self._clock = clock
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{scope.batch_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (and wait for a renewal under way to finish)."""
        self._stop.set()
        self._thread.join(timeout=self._lease.total_seconds())

    def _run(self) -> None:
        interval = self._lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                with self._sessions.begin() as session:
                    held = renew_lease(session, self._scope, self._clock() + self._lease)
            except SQLAlchemyError as error:
                log.warning(
                    "batch %s: lease renewal failed: %s", self._scope.batch_id, type(error).__name__
                )
                continue
            if not held:
                self.lost.set()
                return


def _finish_batch(session: Session, batch_id: int, now: datetime, fence: int) -> None:
    """Done if nothing is left; otherwise pending again, due at its earliest remaining row."""
    next_due = session.scalar(
        select(func.min(Notification.next_attempt_at)).where(
            Notification.batch_id == batch_id, Notification.status.in_(IN_FLIGHT)
        )
    )
    values: dict[str, Any] = {"lease_until": None, "updated_at": now}
    if next_due is None:
        values["status"] = BatchStatus.DONE
    else:
        values.update(status=BatchStatus.PENDING, due_at=next_due)
    session.execute(
        update(CampaignBatch)
        .where(
            CampaignBatch.id == batch_id,
            CampaignBatch.status == BatchStatus.RUNNING,
            CampaignBatch.attempts == fence,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def send_batch(
    sessions: SessionFactory,
    transport: Transport,
    settings: Settings,
    batch_id: int,
    *,
    limiter: RateLimiter,
    retry_delay: Callable[[int], float],
    clock: Callable[[], datetime] = utcnow,
    essential_first: EssentialFirst | None = None,
) -> BatchReport:
    """Send what is due in batch ``batch_id``; safe to call again for it at any time.

    Before each group's claim it gives way to essential mail (``essential_first``, see
    :mod:`notify.campaigns.yielding`)."""
    report = BatchReport(batch_id)
    lease = timedelta(seconds=settings.campaign_batch_lease_seconds)
    with sessions.begin() as session:
        now = clock()
        held = claim_batch(session, batch_id, now=now, lease=lease)
        if held is None:
            report.skipped = True
            return report
        campaign_id, fence = held
        campaign = session.get_one(Campaign, campaign_id)
        template, category, data, rate = (
            campaign.template,
            campaign.category,
            campaign.data,
            campaign.rate_limit,
        )
        if campaign.status != CampaignStatus.RUNNING:
            _finish_batch(session, batch_id, now, fence)
            report.stopped = campaign.status
            return report
        scope = BatchScope(
            batch_id,
            fence,
            campaign_id,
            category,
            settings.default_subscriptions,
            settings.default_timezone,
        )
        as_claimed = CampaignState(campaign_id, CampaignStatus.RUNNING.value, rate)
        suppressed = suppress_ineligible(session, scope, now)
        for reason in suppressed.values():
            report.count_suppressed(reason)
        decisions.record_claims(
            session,
            suppressed,
            scope.defaults,
            now=now,
            default_zone=scope.default_zone,
            campaign=as_claimed,
        )
        rows = _due_rows(session, batch_id, now)

    deadline = time.monotonic() + settings.campaign_batch_seconds
    sender = parseaddr(settings.sender_for(category))[1]
    composer = BatchComposer(settings, template, category, data)
    size = group_size(settings.campaign_commit_every, rate)
    sent_pending: dict[str, datetime] = {}  # accepted by the relay (when), recorded with the
    # next group's claim
    unsent: list[str] = []  # claimed in this group and not yet handed to the relay
    session = sessions()  # one session for the loop, one short transaction a group
    heartbeat = LeaseHeartbeat(sessions, scope, lease, clock)
    heartbeat.start()
    try:
        for first in range(0, len(rows), size):
            if time.monotonic() > deadline:
                report.stopped = "time"
                break
            if heartbeat.lost.is_set():
                report.stopped = "lease lost"
                break
            # Giving way to essential mail and the first message's rate-limit wait come before
            # the claim, so neither holds a claimed message (and its eligibility check) for
            # long; the rest of a group waits at most a quarter of a second of the rate
            # (group_size) after it.
            if essential_first is not None and essential_first.busy():
                # Record what the relay accepted before waiting, so a crash meanwhile cannot
                # send it again.
                outbox.mark_sent_many(session, sent_pending)
                session.commit()
                sent_pending = {}
                report.gave_way_seconds += essential_first.give_way(until=deadline)
            if rate and not limiter.wait(f"campaign:{campaign_id}", rate, until=deadline):
                report.stopped = "time"
                break
            group = rows[first : first + size]
            now = clock()
            outbox.mark_sent_many(session, sent_pending)
            claimed = claim_messages(
                session, scope, [row.id for row in group], settings.sending_domain, now
            )
            verdicts: dict[str, str | None] = dict.fromkeys(claimed)
            waiting = hold_quiet_hours(session, scope, group, claimed, now)
            report.deferred += len(waiting)
            for row in group:
                if row.id in claimed or row.id in waiting:
                    continue
                refusal = why_unclaimed(session, scope, row.id, now)
                blocked = refusal.blocked
                if blocked is not None and outbox.suppress_unsent(session, row.id, blocked):
                    report.count_suppressed(blocked)
                    verdicts[row.id] = blocked
                report.stopped = report.stopped or refusal.stop
            decisions.record_claims(
                session,
                verdicts,
                scope.defaults,
                now=now,
                default_zone=scope.default_zone,
                held=waiting,
                campaign=as_claimed,
            )
            session.commit()
            sent_pending = {}  # recorded: only a commit makes it so
            unsent = [row.id for row in group if row.id in claimed]
            if report.stopped is not None:
                break
            permit_taken = True  # the first one, above
            for row in group:
                if row.id not in claimed:
                    continue
                if not row.readable:  # retried until this worker has the key, or failed
                    unsent.remove(row.id)
                    undecryptable = outbox.Undecryptable(row.id, category, claimed[row.id][0])
                    outcome = record_undecryptable(session, settings, undecryptable, retry_delay)
                    session.commit()
                    _tally(report, outcome)
                    continue
                if rate and not permit_taken:
                    allowed = limiter.wait(f"campaign:{campaign_id}", rate, until=deadline)
                    if not allowed:
                        report.stopped = "time"
                        break
                permit_taken = False
                unsent.remove(row.id)
                attempts, message_id = claimed[row.id]
                job = Claimed(
                    id=row.id, template=template, category=category, data=data,
                    attempts=attempts, message_id=message_id, email=row.email,
                    recipient_id=row.recipient_id, recipient_public_id=row.public_id,
                    locale=row.locale, erased=False, personal=row.personal,
                    campaign_id=campaign_id, time_zone=row.time_zone,
                )  # fmt: skip
                try:
                    raw = composer.raw(job, now=now)  # serialised once per locale, filled in
                    transport.send_raw(
                        raw,
                        message_id=message_id,
                        envelope_from=links.envelope_sender(settings, row.id, category)
                        if settings.inbound_domain
                        else sender,
                        envelope_to=row.email,
                    )
                except COMPOSE_ERRORS as error:
                    record_compose_error(session, job, error)
                    session.commit()
                    report.failed += 1
                    continue
                except DeliveryError as error:
                    outcome = record_delivery_error(session, settings, job, error, retry_delay)
                    session.commit()
                    _tally(report, outcome)
                    continue
                sent_pending[row.id] = clock()
                report.sent += 1
            if report.stopped is not None:
                break
    finally:
        # Whatever ended the loop (done, paused, a database error, a time limit): record the
        # messages already handed to the relay, give back the ones claimed but not tried, and
        # give the batch back. Through a database outage this is retried for one lease; the
        # lease cannot be renewed meanwhile, so an outage longer than the lease may let the
        # next holder send those messages again.
        session.rollback()
        session.close()
        last_sent, not_tried = dict(sent_pending), list(unsent)

        def close_batch(closing: Session) -> None:
            outbox.mark_sent_many(closing, last_sent)
            release_untried(closing, scope, not_tried)
            _finish_batch(closing, batch_id, clock(), fence)

        try:
            commit_until(
                sessions,
                close_batch,
                deadline=time.monotonic() + lease.total_seconds(),
                what=f"the end of campaign batch {batch_id}",
            )
        finally:
            heartbeat.stop()
            _count(report, category)  # also when a time limit or an error ended the run
    log.info(
        "campaign batch %s: %d sent, %d suppressed, %d failed, %d retrying, %d in quiet hours%s%s",
        batch_id,
        report.sent,
        report.suppressed,
        report.failed,
        report.retrying,
        report.deferred,
        f", gave way to essential mail for {report.gave_way_seconds:.1f}s"
        if report.gave_way_seconds >= 0.05
        else "",
        f", stopped ({report.stopped})" if report.stopped else "",
        extra={"campaign_id": campaign_id, "batch_id": batch_id},
    )
    return report


def _tally(report: BatchReport, outcome: Outcome) -> None:
    """A message that did not go: retrying or failed."""
    if outcome.result is Result.RETRY:
        report.retrying += 1
    else:
        report.failed += 1


def _count(report: BatchReport, category: str) -> None:
    """The batch run's outcomes in the metrics (:mod:`notify.observability.metrics`)."""
    for outcome, how_many in (
        ("sent", report.sent),
        ("failed", report.failed),
        ("retried", report.retrying),
    ):
        if how_many:
            metrics.CAMPAIGN_MESSAGES.labels(outcome).inc(how_many)
            metrics.count_notification(category, outcome, how_many=how_many)
    for reason, how_many in report.reasons.items():
        metrics.CAMPAIGN_MESSAGES.labels("suppressed").inc(how_many)
        metrics.count_notification(category, "suppressed", reason, how_many)
    if report.gave_way_seconds:
        metrics.CAMPAIGN_GAVE_WAY_SECONDS.inc(report.gave_way_seconds)
