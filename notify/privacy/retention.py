"""Retention: old notifications lose their content, very old ones are deleted (counts kept).

On PostgreSQL, where ``notifications`` is partitioned by month (:mod:`notify.partitions`),
rows are deleted a whole month at a time: once every row of a month is older than the log
retention, its partitions are detached, counted into the daily counts and dropped, so a row is
kept between ``log_days`` and ``log_days`` plus one month (longer only while the month is in
use when retention runs: it is taken at the next hourly run). Rows in the default partition,
and every row on SQLite, are deleted one batch at a time once they are older than
``log_days``. Content is removed row by row on both, at ``content_days`` exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import column, delete, exists, select, table, tuple_, update
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
IN_USE = ("55P03", "40P01")  # PostgreSQL's lock_timeout ran out; a deadlock was broken


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
    lock_timeout: str = partitions.LOCK_TIMEOUT,
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
    deleted += _retire_months(sessions, delete_before, lock_timeout)
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
    _forget_keys_of_retired_months(sessions, delete_before, batch_size, max_batches)
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


def _retire_months(sessions: SessionFactory, delete_before: datetime, lock_timeout: str) -> int:
    """PostgreSQL: detach each month whose rows are all older than ``delete_before`` (a short
    transaction each; a month in use waits for the next run), then count and drop every
    detached month, this run's and any an earlier run left; returns how many rows went."""
    with sessions.begin() as session:
        due = partitions.months_before(session.connection(), delete_before)
    for month in due:
        try:
            with sessions.begin() as session:
                partitions.detach_month(session.connection(), month, lock_timeout=lock_timeout)
        except OperationalError as error:
            _raise_unless_in_use(error, month)
            break
    deleted = 0
    with sessions.begin() as session:
        detached = partitions.detached_months(session.connection())
    for month in detached:
        try:
            with sessions.begin() as session:
                if not partitions.take_detached(session.connection(), month):
                    continue  # another run is counting it, or has dropped it
                counted = roll_up(session, rows=partitions.detached_rows(month))
                partitions.drop_detached(session.connection(), month, lock_timeout=lock_timeout)
        except OperationalError as error:
            _raise_unless_in_use(error, month)
            break
        log.info("retention: dropped the month %s (%d notifications)", f"{month:%Y-%m}", counted)
        deleted += counted
    return deleted


def _raise_unless_in_use(error: OperationalError, month: date) -> None:
    """Log a month whose lock PostgreSQL did not grant (a lock timeout, or a deadlock it broke):
    the next run takes it. Any other error is raised."""
    if getattr(error.orig, "sqlstate", None) not in IN_USE:
        raise error
    log.warning("retention: month %s is in use; the next run takes it", f"{month:%Y-%m}")


def _forget_keys_of_retired_months(
    sessions: SessionFactory, delete_before: datetime, batch_size: int, max_batches: int
) -> None:
    """Delete, ``batch_size`` at a time, the idempotency keys whose notification went with its
    month (rows deleted singly take their keys with them). Only keys older than both
    ``delete_before`` and the oldest month still attached are looked at, and a key whose
    notification still exists (in the default partition) is kept."""
    with sessions.begin() as session:
        oldest = partitions.oldest_month(session.connection())
    if oldest is None:
        return  # SQLite, or no month attached: every row goes singly, with its key
    before = min(delete_before, partitions.start_of(oldest))
    orphaned = (
        select(IdempotencyKey.api_key_id, IdempotencyKey.idempotency_key)
        .where(
            IdempotencyKey.notification_created_at < before,
            ~exists().where(
                Notification.id == IdempotencyKey.notification_id,
                Notification.created_at == IdempotencyKey.notification_created_at,
            ),
        )
        .limit(batch_size)
    )
    for _ in range(max_batches):
        with sessions.begin() as session:
            result = session.execute(
                delete(IdempotencyKey).where(
                    tuple_(IdempotencyKey.api_key_id, IdempotencyKey.idempotency_key).in_(orphaned)
                )
            )
        if not getattr(result, "rowcount", 0):
            break


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
