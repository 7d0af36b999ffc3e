"""Retention: old notifications lose their content, very old ones are deleted (counts kept).

On PostgreSQL, where ``notifications`` is partitioned by month (:mod:`notify.partitions`),
rows are deleted a whole month at a time: a month's partitions are dropped once every row in
them is older than the log retention, so a row is kept between ``log_days`` and ``log_days``
plus one month. Rows in the default partition, and every row on SQLite, are deleted one batch
at a time once they are older than ``log_days``. Content is removed row by row on both, at
``content_days`` exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import column, delete, select, table, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from notify import partitions
from notify.db import SessionFactory
from notify.models import (
    IdempotencyKey,
    Notification,
    NotificationDecision,
    PagePress,
    ScannerHold,
)
from notify.models.base import utcnow
from notify.privacy.daily_counts import roll_up

log = logging.getLogger(__name__)
PRESSES_KEPT = timedelta(hours=1)  # longer than any burst window (at most an hour)
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout ran out


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
    lock_timeout: str = "5s",
) -> RetentionReport:
    """Empty the content of old notifications, then delete very old ones, ``batch_size`` rows
    per short transaction, so no lock is held long; returns what it removed. On PostgreSQL a
    month whose rows are all older than ``log_days`` is dropped whole, waiting at most
    ``lock_timeout`` for the tables' lock (a month still in use is dropped by a later run).
    Also forgets presses of the unsubscribe page older than an hour and ended scanner holds."""
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
    with sessions.begin() as session:
        droppable = partitions.months_before(session.connection(), delete_before)
    for month in droppable:
        try:
            with sessions.begin() as session:
                deleted += _drop_month(session, month, lock_timeout)
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            log.warning("retention: month %s is in use; the next run drops it", f"{month:%Y-%m}")
            break
    for _ in range(max_batches):
        with sessions.begin() as session:
            rows = _rows_kept_singly(session)
            ids = list(
                session.scalars(
                    select(rows.c.id)
                    .where(rows.c.created_at < delete_before)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                break
            roll_up(session, Notification.id.in_(ids))
            _delete_belongings(session, ids)
            session.execute(delete(rows).where(rows.c.id.in_(ids)))
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


def _drop_month(session: Session, month: date, lock_timeout: str) -> int:
    """Count a month's notifications into the daily counts, delete their idempotency keys and
    drop the month's partitions, in the session's transaction; returns how many rows went."""
    start = partitions.start_of(month)
    end = partitions.start_of(partitions.next_month(month))
    counted = roll_up(session, (Notification.created_at >= start) & (Notification.created_at < end))
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.notification_created_at >= start,
            IdempotencyKey.notification_created_at < end,
        )
    )
    partitions.drop_month(session.connection(), month, lock_timeout=lock_timeout)
    log.info("retention: dropped the month %s (%d notifications)", f"{month:%Y-%m}", counted)
    return counted


def _rows_kept_singly(session: Session) -> Any:
    """Where rows are deleted one by one: the default partition on PostgreSQL (a month's own
    partition goes whole), the table itself on SQLite."""
    if partitions.is_partitioned(session.connection()):
        return table(partitions.default_name("notifications"), column("id"), column("created_at"))
    return Notification.__table__


def _delete_belongings(session: Session, ids: list[str]) -> None:
    """Delete what is kept about the notifications ``ids`` besides their rows."""
    session.execute(
        delete(NotificationDecision).where(NotificationDecision.notification_id.in_(ids))
    )
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.notification_id.in_(ids)))
