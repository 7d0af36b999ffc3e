"""Recipients: create or update by the producer's ``user_id``. Callers own the transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from notify.db import insert_on_conflict, on_postgresql
from notify.models import Recipient
from notify.models.base import utcnow
from notify.models.recipients import new_public_id
from notify.people.suppressions import address_hash, follow_person


class UnknownRecipientError(LookupError):
    """No live recipient has this ``user_id``: there never was one, or the person was erased.

    The web app answers it with 404 ``{"detail": "no such user"}`` (``notify.web.errors``).
    """

    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.user_id = user_id


def get_by_user_id(session: Session, user_id: str) -> Recipient | None:
    """The recipient with this ``user_id``, erased or not; None if there is none."""
    return session.scalars(select(Recipient).where(Recipient.user_id == user_id)).one_or_none()


def require_live(session: Session, user_id: str) -> Recipient:
    """The recipient with this ``user_id``; raises :class:`UnknownRecipientError` if there is
    none or the person has been erased, so an erased person is never read or changed."""
    recipient = get_by_user_id(session, user_id)
    if recipient is None or recipient.erased_at is not None:
        raise UnknownRecipientError(user_id)
    return recipient


def upsert(
    session: Session,
    user_id: str,
    *,
    email: str | None,
    hash_key: str,
    locale: str | None = None,
    timezone: str | None = None,
    first_name: str | None = None,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> tuple[Recipient, bool]:
    """Create the recipient or update the given fields; returns it and whether it is new.

    ``None`` leaves a field as it is; an empty first name or name removes it, and
    ``attributes`` replaces the stored object (``{}`` removes them all). A new address takes
    the old one's suppression along (not a hard bounce); preferences belong to the person and
    stay. Two concurrent first calls for one ``user_id`` race on the unique constraint: the
    loser gets ``IntegrityError`` and the caller may retry.
    """
    recipient = get_by_user_id(session, user_id)
    created = recipient is None
    if recipient is None:
        recipient = Recipient(user_id=user_id)
        session.add(recipient)
    if email is not None:
        old_hash = recipient.email_hash
        recipient.email = email
        recipient.email_hash = address_hash(hash_key, email)
        if old_hash is not None:
            follow_person(session, old_hash, recipient.email_hash)
    if locale is not None:
        recipient.locale = locale
    if timezone is not None:
        recipient.timezone = timezone
    if first_name is not None:
        recipient.first_name = first_name or None
    if name is not None:
        recipient.name = name or None
    if attributes is not None:
        recipient.attributes = attributes or None
    if not created:
        recipient.updated_at = utcnow()
    session.flush()
    return recipient, created


def upsert_for_send(
    session: Session, user_id: str, *, email: str | None, hash_key: str
) -> int | None:
    """The recipient's id for a send, in one statement when an address is given.

    With an address: insert, or update the stored address (it is the producer's current one;
    a suppression follows the person to it).
    Without: the existing recipient's id, or None if there is none or it has no address.
    """
    if email is None:
        row = session.execute(
            select(Recipient.id, Recipient.email).where(Recipient.user_id == user_id)
        ).first()
        return int(row[0]) if row is not None and row[1] else None
    now = utcnow()
    new_hash = address_hash(hash_key, email)
    old_hash = session.scalar(_ADDRESS_HASH_OF_USER, {"user_id": user_id})
    values = {
        "user_id": user_id,
        "email": email,
        "email_hash": new_hash,
        "public_id": new_public_id(),
        "created_at": now,
        "updated_at": now,
    }
    recipient_id = int(session.execute(_upsert_statement(session), values).scalar_one())
    if old_hash is not None and old_hash != new_hash:
        follow_person(session, old_hash, new_hash)
    return recipient_id


_UPSERTS: dict[bool, Any] = {}
_ADDRESS_HASH_OF_USER = select(Recipient.email_hash).where(
    Recipient.user_id == bindparam("user_id")
)  # built once: every send with an address runs it


def _upsert_statement(session: Session) -> Any:
    """The recipient upsert of :func:`upsert_for_send`, built once per dialect: its values are
    bound at execution, so SQLAlchemy's statement cache serves every later call."""
    postgres = on_postgresql(session)
    if postgres not in _UPSERTS:
        table = Recipient.__table__
        statement = insert_on_conflict(session, table)
        _UPSERTS[postgres] = statement.on_conflict_do_update(
            index_elements=["user_id"],
            set_={
                "email": statement.excluded.email,
                "email_hash": statement.excluded.email_hash,
                "updated_at": statement.excluded.updated_at,
            },
        ).returning(table.c.id)
    return _UPSERTS[postgres]
