"""Applying what came back to the database: one transaction per returned message and address.

* A hard bounce (``failed`` with 5.1.1, 5.1.2 or 5.2.1, as at send time) suppresses the
  notification's address for all mail; any other failure is a soft bounce, reported to the
  sending key (``notification.bounced`` with the status) but not suppressed.
* A complaint suppresses optional mail to the address and is reported
  (``notification.complained``).
* A mail to an unsubscribe address does what the one-click POST does (source ``mailto``).
* What cannot be read, or names a notification that no longer exists, is kept as a file in
  ``NOTIFY_INBOUND_KEEP_DIR`` for an operator, up to ``NOTIFY_INBOUND_KEEP_MAX_MB``; past that
  it is dropped with a warning in the log, never without a trace.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from notify.config import Settings
from notify.db import SessionFactory
from notify.delivery import outbox
from notify.delivery.transport import HARD_BOUNCE_CODES
from notify.inbound import reports, sns
from notify.message.return_addresses import BOUNCES, Returned, read
from notify.models import ConsentSource, Notification, Recipient, SuppressionReason
from notify.observability import metrics
from notify.people import preferences, soft_bounces, suppressions
from notify.people.consent import Origin
from notify.producers.callbacks.events import EventType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    what: str  # hard_bounce, soft_bounce, complaint, unsubscribed, kept, nothing
    detail: str = ""


def keep(settings: Settings, raw: bytes, why: str) -> Path | None:
    """Keep ``raw`` for an operator; returns where, or None when the folder is full (at most
    ``NOTIFY_INBOUND_KEEP_MAX_MB``; the warning says it was not kept). Kept files older than
    the content retention are removed first."""
    folder = Path(settings.inbound_keep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    oldest = time.time() - settings.retention_content_days * 86_400
    used = 0
    for kept in folder.glob("*.eml"):
        stat = kept.stat()
        if stat.st_mtime < oldest:
            kept.unlink(missing_ok=True)
        else:
            used += stat.st_size
    if used + len(raw) > settings.inbound_keep_max_mb * 1024 * 1024:
        log.warning(
            "a returned message (%s, %d bytes) was not kept: the folder is full", why, len(raw)
        )
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
    path.write_bytes(raw)
    log.warning("kept a returned message for an operator (%s): %s", why, path.name)
    return path


def handle(sessions: SessionFactory, settings: Settings, returned: Returned, raw: bytes) -> Outcome:
    """Apply one returned message for one of notify's addresses."""
    if returned.kind == BOUNCES:
        return _counted(_bounce(sessions, settings, str(returned.notification_id), raw))
    with sessions.begin() as session:
        holder = preferences.unsubscribe_link_holder(
            session,
            str(returned.public_id),
            str(returned.category),
            Origin(ConsentSource.MAILTO, campaign_id=returned.campaign_id),
            settings.default_subscriptions,
        )
    if holder is None:
        return Outcome("nothing", "no such person any more")
    return Outcome("unsubscribed", str(returned.category))


def _bounce(
    sessions: SessionFactory, settings: Settings, notification_id: str, raw: bytes
) -> Outcome:
    report = reports.read(raw)
    if report.kind == reports.UNREADABLE:
        keep(settings, raw, report.why)
        return Outcome("kept", report.why)
    if report.kind == reports.DSN and not report.failures:
        return Outcome("nothing", "a report without a failed recipient (delayed, delivered)")
    with sessions.begin() as session:
        found = session.execute(
            select(Recipient.email, Notification.campaign_id)
            .join(Notification, Notification.recipient_id == Recipient.id)
            .where(Notification.id == notification_id)
        ).first()
        address, campaign_id = found if found is not None else (None, None)
        if address is None:
            keep(settings, raw, "its notification or address is gone")
            return Outcome("kept", "unknown notification")
        if report.kind == reports.COMPLAINT:
            suppressions.suppress(
                session,
                settings.hash_key,
                address,
                SuppressionReason.COMPLAINT,
                Origin(
                    ConsentSource.COMPLAINT,
                    notification_id=notification_id,
                    campaign_id=campaign_id,
                ),
                report.feedback_type,
            )
            outbox.report_feedback(session, notification_id, EventType.COMPLAINED)
            return Outcome("complaint", report.feedback_type or "")
        status = report.failures[0].status
        if status in HARD_BOUNCE_CODES:
            suppressions.suppress(
                session,
                settings.hash_key,
                address,
                SuppressionReason.HARD_BOUNCE,
                Origin(
                    ConsentSource.BOUNCE, notification_id=notification_id, campaign_id=campaign_id
                ),
                f"{status} {report.failures[0].diagnostic or ''}".strip()[:500],
            )
        elif soft_bounces.counts(status):
            origin = Origin(
                ConsentSource.BOUNCE, notification_id=notification_id, campaign_id=campaign_id
            )
            soft_bounces.record(session, settings, address, origin)
        outbox.report_feedback(session, notification_id, EventType.BOUNCED)
        return Outcome("hard_bounce" if status in HARD_BOUNCE_CODES else "soft_bounce", status)


# SES bounce subtypes about the content or the sender, not the address: never suppress it.
SES_NOT_THE_ADDRESS = frozenset({"ContentRejected", "AttachmentRejected", "UnsupportedAttachment"})


def _ses_hard(event: sns.SesEvent, status: str | None) -> bool:
    """A permanent SES bounce suppresses the address, unless it is about the content or the
    sender (its subtype, or a 5.7.x status)."""
    if not event.permanent or event.subtype in SES_NOT_THE_ADDRESS:
        return False
    return not (status or "").startswith("5.7.")


def apply_ses(sessions: SessionFactory, settings: Settings, event: sns.SesEvent) -> Outcome:
    """:func:`_apply_ses`, counted in the metrics."""
    return _counted(_apply_ses(sessions, settings, event))


def _apply_ses(sessions: SessionFactory, settings: Settings, event: sns.SesEvent) -> Outcome:
    """An Amazon SES bounce or complaint: a permanent bounce suppresses each address for all
    mail (SES gave up on it for good), a transient one is only reported, a complaint stops
    optional mail. With VERP on, ``mail.source`` names the notification, whose key hears of it."""
    if event.kind not in ("bounce", "complaint") or not event.recipients:
        return Outcome("nothing", event.kind)
    returned = (
        read(settings.secret_key_list, event.source, settings.inbound_domain)
        if event.source and settings.inbound_domain
        else None
    )
    notification_id = returned.notification_id if returned is not None else None
    complaint = event.kind == "complaint"
    with sessions.begin() as session:
        campaign_id = outbox.campaign_of(session, notification_id)
        for address, status in event.recipients:
            if not complaint and not _ses_hard(event, status):
                origin = Origin(
                    ConsentSource.BOUNCE,
                    actor="ses",
                    notification_id=notification_id,
                    campaign_id=campaign_id,
                )
                if soft_bounces.counts(status) and event.subtype not in SES_NOT_THE_ADDRESS:
                    soft_bounces.record(session, settings, address, origin)
                continue
            if complaint or event.permanent:
                suppressions.suppress(
                    session,
                    settings.hash_key,
                    address,
                    SuppressionReason.COMPLAINT if complaint else SuppressionReason.HARD_BOUNCE,
                    Origin(
                        ConsentSource.COMPLAINT if complaint else ConsentSource.BOUNCE,
                        actor="ses",
                        notification_id=notification_id,
                        campaign_id=campaign_id,
                    ),
                    f"ses {status or ''}".strip(),
                )
        if notification_id is not None:
            kind = EventType.COMPLAINED if complaint else EventType.BOUNCED
            outbox.report_feedback(session, notification_id, kind)
    if complaint:
        return Outcome("complaint")
    return Outcome("hard_bounce" if event.permanent else "soft_bounce")


FEEDBACK_KINDS = ("hard_bounce", "soft_bounce", "complaint")


def _counted(outcome: Outcome) -> Outcome:
    """A bounce or complaint applied: counted in ``notify_feedback_total`` by kind."""
    if outcome.what in FEEDBACK_KINDS:
        metrics.FEEDBACK.labels(outcome.what).inc()
    return outcome
