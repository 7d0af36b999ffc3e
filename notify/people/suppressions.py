"""The suppression list: addresses we must not mail, keyed by an HMAC of the normalised address.

A hard bounce stops all mail to the address; a complaint, an operator's entry or an erasure
stops non-essential mail. Policy rejections (5.7.x) never land here. Data functions take the
session first and never commit.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from notify.db import insert_on_conflict
from notify.masking import mask_addresses
from notify.message.mime import ascii_address
from notify.models import Recipient, Suppression, SuppressionReason
from notify.models.base import utcnow
from notify.people import consent
from notify.people.consent import Origin

ALL_CATEGORIES = "*"


def normalise(address: str) -> str:
    """Case-folded, with the domain as IDNA A-labels: one spelling per mailbox."""
    return ascii_address(address.strip()).lower()


def address_hash(hash_key: str, address: str) -> str:
    digest = hmac.new(hash_key.encode(), normalise(address).encode(), hashlib.sha256)
    return digest.hexdigest()


def lookup(session: Session, hash_key: str, address: str) -> Suppression | None:
    return session.scalars(
        select(Suppression).where(Suppression.address_hash == address_hash(hash_key, address))
    ).one_or_none()


def recipients_with(session: Session, hash_key: str, address: str) -> list[int]:
    """Ids of the people whose current address is ``address`` (by its keyed hash)."""
    return _recipients_with_hash(session, address_hash(hash_key, address))


def _recipients_with_hash(session: Session, digest: str) -> list[int]:
    return list(session.scalars(select(Recipient.id).where(Recipient.email_hash == digest)))


def _event_subjects(session: Session, digest: str) -> list[int | None]:
    """Who a suppression event for the address with keyed hash ``digest`` is about, or
    ``[None]``: the event is logged either way."""
    found: list[int | None] = list(_recipients_with_hash(session, digest))
    return found or [None]


def suppress(
    session: Session,
    hash_key: str,
    address: str,
    reason: SuppressionReason,
    origin: Origin,
    detail: str | None = None,
) -> bool:
    """Add the address (a hard bounce upgrades an existing entry); True if anything changed."""
    return suppress_hash(session, address_hash(hash_key, address), reason, origin, detail)


def suppress_hash(
    session: Session,
    digest: str,
    reason: SuppressionReason,
    origin: Origin,
    detail: str | None = None,
) -> bool:
    """:func:`suppress` for the address whose keyed hash is ``digest`` (a person's stored
    ``email_hash``), without needing the address itself."""
    detail = mask_addresses(detail) if detail else None
    inserted = session.execute(
        insert_on_conflict(session, Suppression)
        .values(address_hash=digest, reason=reason.value, detail=detail, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["address_hash"])
        .returning(Suppression.id)
    ).first()  # two reports for one address at once: one inserts, the other finds it
    if inserted is None:
        if reason != SuppressionReason.HARD_BOUNCE:
            return False
        upgraded = session.execute(
            update(Suppression)
            .where(Suppression.address_hash == digest, Suppression.reason != reason.value)
            .values(reason=reason.value, detail=detail)
        )
        if not getattr(upgraded, "rowcount", 0):
            return False
    for recipient_id in _event_subjects(session, digest):
        consent.record(
            session, recipient_id, ALL_CATEGORIES, f"suppressed:{reason}", origin, detail
        )
    session.flush()
    return True


def lift(session: Session, hash_key: str, address: str, origin: Origin) -> bool:
    """Remove the address from the list; True if it was there."""
    result = session.execute(
        delete(Suppression).where(Suppression.address_hash == address_hash(hash_key, address))
    )
    if not getattr(result, "rowcount", 0):
        return False
    for recipient_id in _event_subjects(session, address_hash(hash_key, address)):
        consent.record(session, recipient_id, ALL_CATEGORIES, "unsuppressed", origin)
    return True


def follow_person(session: Session, old_hash: str, new_hash: str) -> bool:
    """When a person's address changes, their suppression moves with them, except a hard
    bounce, which was about the old mailbox. True if the new address is now suppressed."""
    if old_hash == new_hash:
        return False
    entry = session.scalars(
        select(Suppression).where(Suppression.address_hash == old_hash)
    ).one_or_none()
    if entry is None or entry.reason == SuppressionReason.HARD_BOUNCE:
        return False
    taken = session.scalars(
        select(Suppression.id).where(Suppression.address_hash == new_hash)
    ).first()
    if taken is None:
        session.add(
            Suppression(
                address_hash=new_hash,
                reason=entry.reason,
                detail="followed the person to a new address",
            )
        )
        session.flush()
    return True


def lift_erased(session: Session, hash_key: str, address: str, origin: Origin) -> bool:
    """A fresh opt-in lifts the entry an erasure left for this address (and nothing else)."""
    entry = lookup(session, hash_key, address)
    if entry is None or entry.reason != SuppressionReason.ERASED:
        return False
    return lift(session, hash_key, address, origin)
