"""Sends one campaign batch over the worker's SMTP connection.

Guarantees:
* a lease on the batch row means one worker at a time sends it; a worker that dies loses the
  lease when it expires and the batch is picked up again;
* right before each message, one query re-reads the campaign status, the person's preference
  and the suppression list: a pause stops the batch before its next message, an unsubscribe
  that lands mid-campaign is honoured;
* each message is claimed (``sending``) and then recorded ``sent`` in the next message's
  transaction, so a crash re-sends at most the one message that was in flight;
* a batch starts no new message after ``NOTIFY_CAMPAIGN_BATCH_SECONDS`` (the one in flight may
  take up to an SMTP timeout more, which the lease allows for): what is left is picked up by
  the dispatcher, so a rate-limited campaign never outlives a task time limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import Row, and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from notify.campaigns.rate_limit import RateLimiter
from notify.config import Settings
from notify.db import SessionFactory
from notify.delivery.transport import DeliveryError, Transport
from notify.message.composing import BatchComposer
from notify.message.jobs import Claimed
from notify.message.mime import HeaderInjectionError, new_message_id
from notify.models import (
    BatchStatus,
    Campaign,
    CampaignBatch,
    CampaignStatus,
    ConsentSource,
    Notification,
    NotificationStatus,
    Preference,
    Recipient,
    Suppression,
    SuppressionReason,
)
from notify.models.base import utcnow
from notify.people import suppressions
from notify.people.consent import Origin

log = logging.getLogger(__name__)
IN_FLIGHT = (NotificationStatus.QUEUED.value, NotificationStatus.SENDING.value)


@dataclass
class BatchReport:
    batch_id: int
    sent: int = 0
    suppressed: int = 0
    failed: int = 0
    retrying: int = 0
    stopped: str | None = None  # why it stopped early: paused, cancelled, time
    skipped: bool = False
    reasons: dict[str, int] = field(default_factory=dict)


def claim_batch(
    session: Session, batch_id: int, *, now: datetime, lease: timedelta
) -> tuple[int, int] | None:
    """Take the batch's lease: ``(campaign id, fence)``, or None if it is done or held.

    The fence is the batch's attempt number after this claim. Every later write of this holder
    requires it, so a holder whose lease expired and was taken over stops at its next message
    instead of sending alongside the new one.
    """
    claimable = or_(
        CampaignBatch.status.in_([BatchStatus.ENQUEUED.value, BatchStatus.PENDING.value]),
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


def _batch_rows(session: Session, batch_id: int, now: datetime) -> list[Row[Any]]:
    result: Any = session.execute(
        select(
            Notification.id,
            Notification.recipient_id,
            Notification.attempts,
            Notification.message_id,
            Recipient.email,
            Recipient.email_hash,
            Recipient.public_id,
            Recipient.locale,
            Recipient.erased_at,
        )
        .join(Recipient, Recipient.id == Notification.recipient_id)
        .where(
            Notification.batch_id == batch_id,
            Notification.status.in_(IN_FLIGHT),
            Notification.next_attempt_at <= now,
        )
        .order_by(Notification.recipient_id)
    )
    return list(result.all())


def _block_reason(
    subscribed: bool | None,
    suppression: str | None,
    default_subscribed: bool,
) -> str | None:
    if suppression is not None:
        return suppressions.SEND_TIME_REASON.get(SuppressionReason(suppression), "suppressed")
    wants = default_subscribed if subscribed is None else subscribed
    return None if wants else "unsubscribed"


def _snapshot_blocked(
    session: Session, rows: list[Row[Any]], category: str, default_subscribed: bool
) -> dict[str, str]:
    """The page's preferences and suppressions in two queries; who must not get this now."""
    recipient_ids = [row.recipient_id for row in rows]
    hashes = [row.email_hash for row in rows if row.email_hash]
    preferences = dict(
        session.execute(
            select(Preference.recipient_id, Preference.subscribed).where(
                Preference.recipient_id.in_(recipient_ids), Preference.category == category
            )
        ).all()
    )
    suppressed = dict(
        session.execute(
            select(Suppression.address_hash, Suppression.reason).where(
                Suppression.address_hash.in_(hashes)
            )
        ).all()
    )
    blocked: dict[str, str] = {}
    for row in rows:
        if row.erased_at is not None or not row.email:
            blocked[row.id] = "erased" if row.erased_at is not None else "no_address"
            continue
        reason = _block_reason(
            preferences.get(row.recipient_id),
            suppressed.get(row.email_hash),
            default_subscribed,
        )
        if reason:
            blocked[row.id] = reason
    return blocked


def _fresh_check(
    session: Session, campaign_id: int, row: Row[Any], category: str
) -> tuple[str | None, bool | None, str | None]:
    """Campaign status, this person's preference and suppression, read now in one round trip."""
    status = select(Campaign.status).where(Campaign.id == campaign_id).scalar_subquery()
    subscribed = (
        select(Preference.subscribed)
        .where(Preference.recipient_id == row.recipient_id, Preference.category == category)
        .scalar_subquery()
    )
    suppression = (
        select(Suppression.reason)
        .where(Suppression.address_hash == row.email_hash)
        .scalar_subquery()
    )
    found = session.execute(select(status, subscribed, suppression)).one()
    return found[0], found[1], found[2]


@dataclass(frozen=True)
class Gate:
    """What one message's transaction found: the campaign's status, the person's stored choice
    and suppression, and (if it could be claimed) its attempts and Message-ID."""

    campaign_status: str | None
    subscribed: bool | None
    suppression: str | None
    claimed: tuple[int, str] | None


def _is_postgresql(sessions: SessionFactory) -> bool:
    bind = sessions.kw.get("bind")
    return bind is not None and bind.dialect.name == "postgresql"


# PostgreSQL: record the previous message as sent, read the campaign status, the preference and
# the suppression list, and claim this message, in one statement (one round trip).
_STEP_SQL = text("""
WITH prev AS (
    UPDATE notifications SET status = 'sent', sent_at = :now, updated_at = :now
    WHERE id = :prev AND status = 'sending'
    RETURNING 1
), gate AS (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM campaign_batches
                              WHERE id = :batch_id AND attempts = :fence AND status = 'running')
                THEN (SELECT status FROM campaigns WHERE id = :campaign_id)
                ELSE 'lease lost' END AS campaign_status,
           (SELECT subscribed FROM preferences
             WHERE recipient_id = :recipient_id AND category = :category) AS subscribed,
           (SELECT reason FROM suppressions WHERE address_hash = :address_hash) AS suppression
), claim AS (
    UPDATE notifications
       SET status = 'sending', attempts = attempts + 1, claimed_at = :now, updated_at = :now,
           message_id = coalesce(message_id, :message_id)
     WHERE id = :id AND status IN ('queued', 'sending')
       AND (SELECT campaign_status FROM gate) = 'running'
       AND (SELECT suppression FROM gate) IS NULL
       AND coalesce((SELECT subscribed FROM gate), :default_subscribed)
    RETURNING attempts, message_id
)
SELECT gate.campaign_status, gate.subscribed, gate.suppression, claim.attempts, claim.message_id,
       (SELECT count(*) FROM prev) AS recorded
FROM gate LEFT JOIN claim ON true
""")


def _step_postgresql(
    session: Session,
    batch_id: int,
    fence: int,
    campaign_id: int,
    category: str,
    row: Row[Any],
    sent_pending: str | None,
    default_subscribed: bool,
    sending_domain: str,
    now: datetime,
) -> Gate:
    found = session.execute(
        _STEP_SQL,
        {
            "prev": sent_pending,
            "now": now,
            "campaign_id": campaign_id,
            "recipient_id": row.recipient_id,
            "category": category,
            "address_hash": row.email_hash,
            "message_id": new_message_id(sending_domain),
            "id": row.id,
            "default_subscribed": default_subscribed,
            "batch_id": batch_id,
            "fence": fence,
        },
    ).one()
    claimed = None if found.attempts is None else (int(found.attempts), str(found.message_id))
    return Gate(found.campaign_status, found.subscribed, found.suppression, claimed)


def _step_generic(
    session: Session,
    batch_id: int,
    fence: int,
    campaign_id: int,
    category: str,
    row: Row[Any],
    sent_pending: str | None,
    default_subscribed: bool,
    sending_domain: str,
    now: datetime,
) -> Gate:
    """The same as :func:`_step_postgresql` in three statements (SQLite)."""
    if sent_pending is not None:
        _set_status(session, [sent_pending], NotificationStatus.SENT, None, sent_at=now)
    status, subscribed, suppression = _fresh_check(session, campaign_id, row, category)
    held = session.scalar(
        select(CampaignBatch.id).where(
            CampaignBatch.id == batch_id,
            CampaignBatch.attempts == fence,
            CampaignBatch.status == BatchStatus.RUNNING,
        )
    )
    if held is None:
        return Gate("lease lost", subscribed, suppression, None)
    if status != CampaignStatus.RUNNING:
        return Gate(status, subscribed, suppression, None)
    if _block_reason(subscribed, suppression, default_subscribed) is not None:
        return Gate(status, subscribed, suppression, None)
    return Gate(status, subscribed, suppression, _claim_row(session, row, sending_domain, now))


def _set_status(
    session: Session, ids: list[str], status: NotificationStatus, reason: str | None, **values: Any
) -> None:
    if not ids:
        return
    session.execute(
        update(Notification)
        .where(Notification.id.in_(ids), Notification.status.in_(IN_FLIGHT))
        .values(status=status, reason=reason, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )


def _claim_row(
    session: Session, row: Row[Any], sending_domain: str, now: datetime
) -> tuple[int, str] | None:
    claimed = session.execute(
        update(Notification)
        .where(Notification.id == row.id, Notification.status.in_(IN_FLIGHT))
        .values(
            status=NotificationStatus.SENDING,
            attempts=Notification.attempts + 1,
            claimed_at=now,
            updated_at=now,
            message_id=func.coalesce(Notification.message_id, new_message_id(sending_domain)),
        )
        .returning(Notification.attempts, Notification.message_id)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    return None if claimed is None else (int(claimed[0]), str(claimed[1]))


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
) -> BatchReport:
    """Send what is due in batch ``batch_id``; safe to call again for it at any time."""
    report = BatchReport(batch_id)
    lease = timedelta(seconds=settings.campaign_batch_lease_seconds)
    default_subscribed = None
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
        default_subscribed = category in settings.default_subscriptions
        rows = _batch_rows(session, batch_id, now)
        blocked = _snapshot_blocked(session, rows, category, default_subscribed)
        for reason in set(blocked.values()):
            ids = [row_id for row_id, why in blocked.items() if why == reason]
            _set_status(session, ids, NotificationStatus.SUPPRESSED, reason)
            report.suppressed += len(ids)
            report.reasons[reason] = report.reasons.get(reason, 0) + len(ids)

    deadline = time.monotonic() + settings.campaign_batch_seconds
    sender = parseaddr(settings.sender_for(category))[1]
    composer = BatchComposer(settings, template, category, data)
    step = _step_postgresql if _is_postgresql(sessions) else _step_generic
    sent_pending: str | None = None  # sent over SMTP, recorded in the next transaction
    session = sessions()  # one session for the loop, one short transaction a message
    try:
        for index, row in enumerate(r for r in rows if r.id not in blocked):
            # Wait for the rate limit first, so the checks below are fresh when it leaves.
            if rate and not limiter.wait(f"campaign:{campaign_id}", rate, until=deadline):
                report.stopped = "time"
                break
            if time.monotonic() > deadline:
                report.stopped = "time"
                break
            now = clock()
            gate = step(
                session, batch_id, fence, campaign_id, category, row, sent_pending,
                default_subscribed, settings.sending_domain, now,
            )  # fmt: skip
            sent_pending = None
            if gate.campaign_status != CampaignStatus.RUNNING:
                session.commit()
                report.stopped = gate.campaign_status or "deleted"
                break
            if gate.claimed is None:
                why = _block_reason(gate.subscribed, gate.suppression, default_subscribed)
                if why is not None:
                    _set_status(session, [row.id], NotificationStatus.SUPPRESSED, why)
                    report.suppressed += 1
                    report.reasons[why] = report.reasons.get(why, 0) + 1
                session.commit()
                continue
            if index % 50 == 49:
                session.execute(
                    update(CampaignBatch)
                    .where(CampaignBatch.id == batch_id, CampaignBatch.attempts == fence)
                    .values(lease_until=now + lease)
                )
            session.commit()
            attempts, message_id = gate.claimed
            job = Claimed(
                id=row.id, template=template, category=category, data=data,
                attempts=attempts, message_id=message_id, email=row.email,
                recipient_id=row.recipient_id, recipient_public_id=row.public_id,
                locale=row.locale, erased=False,
            )  # fmt: skip
            try:
                message = composer.message(job, now=now)
                transport.send(message, envelope_from=sender, envelope_to=row.email)
            except (TemplateError, HeaderInjectionError, KeyError, ValueError) as error:
                problem = f"template error: {type(error).__name__}: {error}"[:500]
                _set_status(session, [row.id], NotificationStatus.FAILED, problem)
                session.commit()
                report.failed += 1
                continue
            except DeliveryError as error:
                _record_delivery_error(sessions, settings, job, error, retry_delay, report)
                continue
            sent_pending = row.id
            report.sent += 1
    finally:
        # Whatever ended the loop (done, paused, a database error, a time limit): record the
        # message already handed to the relay and give the batch back.
        session.rollback()
        session.close()
        with sessions.begin() as closing:
            now = clock()
            if sent_pending is not None:
                _set_status(closing, [sent_pending], NotificationStatus.SENT, None, sent_at=now)
            _finish_batch(closing, batch_id, now, fence)
    log.info(
        "campaign batch %s: %d sent, %d suppressed, %d failed, %d retrying%s",
        batch_id,
        report.sent,
        report.suppressed,
        report.failed,
        report.retrying,
        f", stopped ({report.stopped})" if report.stopped else "",
    )
    return report


def _record_delivery_error(
    sessions: SessionFactory,
    settings: Settings,
    job: Claimed,
    error: DeliveryError,
    retry_delay: Callable[[int], float],
    report: BatchReport,
) -> None:
    with sessions.begin() as session:
        if error.permanent or job.attempts >= settings.max_attempts:
            reason = (
                error.reason
                if error.permanent
                else f"gave up after {job.attempts} attempts: {error.reason}"
            )
            _set_status(session, [job.id], NotificationStatus.FAILED, reason)
            report.failed += 1
            if error.hard_bounce and job.email:
                origin = Origin(ConsentSource.BOUNCE, notification_id=job.id)
                suppressions.suppress(
                    session,
                    settings.hash_key,
                    job.email,
                    SuppressionReason.HARD_BOUNCE,
                    origin,
                    error.reason,
                )
            return
        next_at = utcnow() + timedelta(seconds=retry_delay(job.attempts))
        _set_status(
            session, [job.id], NotificationStatus.QUEUED, error.reason, next_attempt_at=next_at
        )
        report.retrying += 1
