"""A person's rights, done by the service: export of everything held, and erasure.

Data functions take the session first and never commit.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from notify.delivery import outbox
from notify.models import (
    ConsentEvent,
    ConsentSource,
    IdempotencyKey,
    Notification,
    NotificationDecision,
    PagePress,
    Pause,
    Preference,
    Recipient,
    SoftBounce,
    SuppressionReason,
)
from notify.models.base import utcnow
from notify.people import consent, preferences, recipients, suppressions
from notify.people.consent import Origin


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
            "quiet_hours": None
            if recipient.quiet_hours_start is None
            else {"start": recipient.quiet_hours_start, "end": recipient.quiet_hours_end},
            "first_name": recipient.first_name,
            "name": recipient.name,
            "attributes": recipient.attributes or {},
            "created_at": recipient.created_at.isoformat(),
            "updated_at": recipient.updated_at.isoformat(),
        },
        "pauses": {
            pause.category: pause.until.isoformat()
            for pause in session.scalars(select(Pause).where(Pause.recipient_id == recipient.id))
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
                **consent.wording_seen(event),
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

    Removes the address, names, attributes, locale, time zone, quiet hours, pauses,
    preferences, recent presses of unsubscribe pages and the explanations of their
    notifications; empties the
    personal content of every notification and marks those still queued ``suppressed``
    (reason ``erased``); frees the ``user_id`` so a later import is a new person; keeps only a
    keyed hash of the address on the suppression list, so that address gets no optional mail
    again without a fresh opt-in. Notification rows stay, anonymised, for aggregate counts.

    Nothing encrypted is read (the address's keyed hash is stored), so a person stored under a
    data key this process lacks is erased all the same: load ``recipient`` with
    ``notify.people.recipients.get_by_user_id(..., defer_encrypted=True)``. Only a person
    stored before addresses were hashed needs their address decrypted to be listed; without
    the key, they are erased but not listed.
    """
    if recipient.erased_at is not None:
        return
    now = utcnow()
    digest = recipients.address_hash_of(session, recipient, hash_key)
    if digest is not None:
        origin = Origin(ConsentSource.OPERATOR, actor=actor)
        # An entry already there (a bounce, a complaint) stays as it is.
        suppressions.suppress_hash(session, digest, SuppressionReason.ERASED, origin)
        session.execute(delete(SoftBounce).where(SoftBounce.address_hash == digest))
    outbox.suppress_queued_of(session, recipient.id, "erased")
    session.execute(
        update(Notification)
        .where(Notification.recipient_id == recipient.id)
        .values(data={}, content_removed_at=now)
        .execution_options(synchronize_session=False)
    )
    # A key names the request that made a notification of theirs; a repeat now sends anew.
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.notification_id.in_(
                select(Notification.id).where(Notification.recipient_id == recipient.id)
            )
        )
    )
    session.execute(delete(Preference).where(Preference.recipient_id == recipient.id))
    session.execute(delete(Pause).where(Pause.recipient_id == recipient.id))
    session.execute(delete(PagePress).where(PagePress.recipient_id == recipient.id))
    # Explanations name the person's quiet hours, time zone and the times of their choices.
    session.execute(
        delete(NotificationDecision).where(
            NotificationDecision.notification_id.in_(
                select(Notification.id).where(Notification.recipient_id == recipient.id)
            )
        )
    )
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
    recipient.first_name = None
    recipient.name = None
    recipient.attributes = None
    recipient.locale = None
    recipient.timezone = None
    recipient.quiet_hours_start = recipient.quiet_hours_end = None
    recipient.erased_at = now
    session.flush()
