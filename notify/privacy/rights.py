"""What the privacy policy promises, done by the service: export, erasure, retention, rotation.

Data functions take the session first and never commit.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, select, text, update
from sqlalchemy.orm import Session

from notify import crypto
from notify.db import SessionFactory
from notify.models import (
    ConsentEvent,
    ConsentSource,
    DailyCount,
    Notification,
    NotificationStatus,
    Preference,
    Recipient,
    SuppressionReason,
)
from notify.models.base import utcnow
from notify.people import consent, preferences, suppressions
from notify.people.consent import Origin

log = logging.getLogger(__name__)


def export(
    session: Session, recipient: Recipient, *, hash_key: str, defaults: frozenset[str]
) -> dict[str, Any]:
    """Everything held about one person, as one JSON-ready document; nothing about anyone else."""
    states = preferences.current(session, recipient.id, defaults)
    entry = suppressions.lookup(session, hash_key, recipient.email) if recipient.email else None
    notifications = session.scalars(
        select(Notification)
        .where(Notification.recipient_id == recipient.id)
        .order_by(Notification.created_at)
    ).all()
    return {
        "profile": {
            "user_id": recipient.user_id,
            "email": recipient.email,
            "locale": recipient.locale,
            "timezone": recipient.timezone,
            "created_at": recipient.created_at.isoformat(),
            "updated_at": recipient.updated_at.isoformat(),
        },
        "preferences": {
            key: {
                "subscribed": state.subscribed,
                "essential": state.category.essential,
                "changed_at": state.changed_at.isoformat() if state.changed_at else None,
                "source": state.source,
            }
            for key, state in states.items()
        },
        "consent_history": [
            {
                "category": event.category,
                "action": event.action,
                "source": event.source,
                "notification_id": event.notification_id,
                "campaign_id": event.campaign_id,
                "at": event.created_at.isoformat(),
            }
            for event in consent.history(session, recipient.id, limit=100_000)
        ],
        "suppression": {"suppressed": entry is not None, "reason": entry.reason if entry else None},
        "notifications": [
            {
                "id": row.id,
                "template": row.template,
                "category": row.category,
                "status": row.status,
                "reason": row.reason,
                "campaign_id": row.campaign_id,
                "message_id": row.message_id,
                "data": row.data,
                "created_at": row.created_at.isoformat(),
                "sent_at": row.sent_at.isoformat() if row.sent_at else None,
            }
            for row in notifications
        ],
    }


def erase(session: Session, recipient: Recipient, *, hash_key: str, actor: str | None) -> None:
    """Forget a person; safe to repeat.

    Removes the address, locale, time zone and preferences; empties the personal content of
    every notification and marks those still queued ``suppressed`` (reason ``erased``); frees
    the ``user_id`` so a later import is a new person; keeps only a keyed hash of the address
    on the suppression list, so that address gets no optional mail again without a fresh
    opt-in. Notification rows stay, anonymised, for aggregate counts.
    """
    if recipient.erased_at is not None:
        return
    now = utcnow()
    if recipient.email:
        origin = Origin(ConsentSource.OPERATOR, actor=actor)
        existing = suppressions.lookup(session, hash_key, recipient.email)
        if existing is None:
            suppressions.suppress(
                session, hash_key, recipient.email, SuppressionReason.ERASED, origin
            )
    session.execute(
        update(Notification)
        .where(
            Notification.recipient_id == recipient.id,
            Notification.status == NotificationStatus.QUEUED,
        )
        .values(status=NotificationStatus.SUPPRESSED, reason="erased", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Notification)
        .where(Notification.recipient_id == recipient.id)
        .values(data={}, content_removed_at=now, idempotency_key=None, request_hash=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(Preference).where(Preference.recipient_id == recipient.id))
    session.execute(
        update(ConsentEvent)
        .where(ConsentEvent.recipient_id == recipient.id)
        .values(detail=None, actor=None)
        .execution_options(synchronize_session=False)
    )
    consent.record(
        session,
        recipient.id,
        suppressions.ALL_CATEGORIES,
        "erased",
        Origin(ConsentSource.OPERATOR, actor=actor),
    )
    recipient.user_id = f"erased:{uuid.uuid4().hex}"
    recipient.email = None
    recipient.email_hash = None
    recipient.locale = None
    recipient.timezone = None
    recipient.erased_at = now
    session.flush()


# --- retention ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionReport:
    contents_removed: int
    rows_deleted: int


def day_of(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as text ``YYYY-MM-DD``, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)


def suppression_reason_column() -> Any:
    """The reason of a suppressed row ("" for every other outcome: free text never groups)."""
    return case(
        (
            Notification.status == NotificationStatus.SUPPRESSED,
            func.coalesce(Notification.reason, ""),
        ),
        else_="",
    )


def _roll_up(session: Session, ids: list[str]) -> None:
    """Add the rows about to be deleted to the daily counts, so aggregates survive."""
    grouped = session.execute(
        select(
            day_of(session, Notification.created_at).label("day"),
            Notification.category,
            Notification.template,
            Notification.status,
            suppression_reason_column().label("reason"),
            func.count(),
        )
        .where(Notification.id.in_(ids))
        .group_by(
            "day", Notification.category, Notification.template, Notification.status, "reason"
        )
    ).all()
    for day, category, template, status, reason_key, count in grouped:
        key = {
            "day": str(day),
            "category": category,
            "template": template,
            "status": status,
            "reason": reason_key,
        }
        row = session.scalars(select(DailyCount).filter_by(**key)).one_or_none()
        if row is None:
            session.add(DailyCount(**key, count=int(count)))
        else:
            row.count += int(count)
    session.flush()


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
    per short transaction, so no lock is held long; returns what it removed."""
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
            _roll_up(session, ids)
            session.execute(delete(Notification).where(Notification.id.in_(ids)))
            deleted += len(ids)
    log.info("retention: removed content of %d notifications, deleted %d", removed, deleted)
    return RetentionReport(removed, deleted)


# --- key rotation ---------------------------------------------------------------------------


def reencrypt(sessions: SessionFactory, *, batch_size: int = 1000) -> int:
    """Re-encrypt every encrypted value under the newest data key; returns how many changed.

    Works on the stored tokens as text (never on decrypted objects), a keyset page per short
    transaction, so it can run while the service is live.
    """
    changed = 0
    for table, column in (("recipients", "email"), ("notifications", "data")):
        last: Any = None
        while True:
            with sessions.begin() as session:
                where = f"{column} IS NOT NULL" + ("" if last is None else " AND id > :last")
                rows = session.execute(
                    text(f"SELECT id, {column} FROM {table} WHERE {where} ORDER BY id LIMIT :n"),  # noqa: S608
                    {"last": last, "n": batch_size},
                ).all()
                if not rows:
                    break
                for row_id, token in rows:
                    rotated = crypto.rotate_token(token)
                    if rotated != token:
                        # Compare-and-set: a change committed meanwhile (an erasure, a new
                        # address) is never overwritten with the old value.
                        result: Any = session.execute(
                            text(
                                f"UPDATE {table} SET {column} = :token "  # noqa: S608
                                f"WHERE id = :id AND {column} = :old"
                            ),
                            {"token": rotated, "id": row_id, "old": token},
                        )
                        changed += int(result.rowcount or 0)
                last = rows[-1][0]
    log.info("re-encrypted %d values under the newest data key", changed)
    return changed
