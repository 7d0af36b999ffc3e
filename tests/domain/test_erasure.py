"""Erasure lists the person's address by its keyed hash, on both engines: from the stored hash
without decrypting anything, from the decrypted address for a person stored before addresses
were hashed, and never over an entry already there."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from notify.models import ConsentEvent, ConsentSource, Recipient, Suppression, SuppressionReason
from notify.people import recipients, suppressions
from notify.people.consent import Origin
from notify.privacy import rights
from tests.domain.people import HASH_KEY, person, under_another_key


def _erase(session: Session, user_id: str) -> int:
    recipient = recipients.get_by_user_id(session, user_id, defer_encrypted=True)
    assert recipient is not None
    rights.erase(session, recipient, hash_key=HASH_KEY, actor="test")
    return recipient.id


def _listed(session: Session, address: str) -> str | None:
    digest = suppressions.address_hash(HASH_KEY, address)
    return session.scalar(select(Suppression.reason).where(Suppression.address_hash == digest))


def _actions(session: Session, recipient_id: int) -> list[str]:
    return list(
        session.scalars(
            select(ConsentEvent.action).where(ConsentEvent.recipient_id == recipient_id)
        )
    )


def test_an_address_no_data_key_decrypts_is_listed_from_its_stored_hash(session: Session) -> None:
    recipient_id = person(session, "erase-lost")
    address = "erase-lost@example.com"
    session.execute(
        update(Recipient)
        .where(Recipient.id == recipient_id)
        .values(email=under_another_key(address))
    )
    erased_id = _erase(session, "erase-lost")
    assert _listed(session, address) == "erased"
    assert "suppressed:erased" in _actions(session, erased_id)


def test_a_person_stored_before_addresses_were_hashed_is_listed_from_their_address(
    session: Session,
) -> None:
    recipient_id = person(session, "erase-unhashed")
    session.execute(update(Recipient).where(Recipient.id == recipient_id).values(email_hash=None))
    _erase(session, "erase-unhashed")
    # The listing's consent event finds its subjects by the stored hash, so it names nobody
    # here (as before erasure read the hash); the person's own "erased" event stays theirs.
    assert _listed(session, "erase-unhashed@example.com") == "erased"
    assert _actions(session, recipient_id) == ["erased"]


def test_an_entry_already_there_is_kept_and_no_erased_listing_is_recorded(
    session: Session,
) -> None:
    recipient_id = person(session, "erase-bounced")
    address = "erase-bounced@example.com"
    bounced = Origin(ConsentSource.BOUNCE)
    assert suppressions.suppress(session, HASH_KEY, address, SuppressionReason.HARD_BOUNCE, bounced)
    _erase(session, "erase-bounced")
    assert _listed(session, address) == "hard_bounce"
    actions = _actions(session, recipient_id)
    assert "suppressed:hard_bounce" in actions and "suppressed:erased" not in actions
