"""Retention: old notifications lose their content, very old ones are deleted (counts kept)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from notify.db import SessionFactory
from notify.models import Notification, PagePress, ScannerHold
from notify.models.base import utcnow
from notify.privacy.daily_counts import roll_up

log = logging.getLogger(__name__)
PRESSES_KEPT = timedelta(hours=1)  # longer than any burst window (at most an hour)


@dataclass(frozen=True)
class RetentionReport:
    contents_removed: int
    rows_deleted: int


def apply_retention(
    sessions: SessionFactory,
    *,
    content_days: int,
    log_days: int,
    batch_size: int = 500,
    now: datetime | None = None,
    max_batches: int = 200,
) -> RetentionReport:
    """Empty the content of old notifications, then delete very old ones, ``batch_size`` rows
    per short transaction, so no lock is held long; returns what it removed. Also forgets
    presses of the unsubscribe page older than an hour and ended scanner holds."""
    now = now or utcnow()
    content_before = now - timedelta(days=content_days)
    delete_before = now - timedelta(days=log_days)
    removed = deleted = 0
    for _ in range(max_batches):
        with sessions.begin() as session:
            ids = list(
                session.scalars(
                    select(Notification.id)
                    .where(
                        Notification.created_at < content_before,
                        Notification.content_removed_at.is_(None),
                    )
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                break
            session.execute(
                update(Notification)
                .where(Notification.id.in_(ids))
                .values(data={}, content_removed_at=now)
                .execution_options(synchronize_session=False)
            )
            removed += len(ids)
    for _ in range(max_batches):
        with sessions.begin() as session:
            ids = list(
                session.scalars(
                    select(Notification.id)
                    .where(Notification.created_at < delete_before)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                break
            roll_up(session, ids)
            session.execute(delete(Notification).where(Notification.id.in_(ids)))
            deleted += len(ids)
    with sessions.begin() as session:
        # Presses of the unsubscribe page are kept for the scanner guard's burst window only;
        # each press prunes them, and this catches those no later press came after.
        session.execute(delete(PagePress).where(PagePress.at < now - PRESSES_KEPT))
        session.execute(delete(ScannerHold).where(ScannerHold.until < now))
    # A run that found nothing to do stays out of the INFO log (it runs every hour).
    log.log(
        logging.INFO if removed or deleted else logging.DEBUG,
        "retention: removed content of %d notifications, deleted %d",
        removed,
        deleted,
    )
    return RetentionReport(removed, deleted)
