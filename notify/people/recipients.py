"""Recipients: create or update by the producer's ``user_id``. Callers own the transaction."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CTE, Table, bindparam, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, defer

from notify.crypto import UndecryptableError
from notify.db import insert_on_conflict, on_postgresql
from notify.message.personal import PersonalFields
from notify.models import Recipient
from notify.models.base import EncryptedJSON, EncryptedText, opened, stored, utcnow
from notify.models.recipients import new_public_id
from notify.people.suppressions import address_hash, follow_person

# A person's own fields as stored, for reads that decrypt one person at a time
# (:func:`personal_fields_of`): one that no data key decrypts then fails alone.
STORED_PERSONAL_FIELDS = (
    stored(Recipient.first_name),
    stored(Recipient.name),
    stored(Recipient.attributes),
)


def personal_fields_of(row: Any) -> PersonalFields:
    """The fields of a row read with :data:`STORED_PERSONAL_FIELDS`, decrypted;
    :class:`notify.crypto.UndecryptableError` if none of the process's data keys can."""
    return PersonalFields(
        opened(Recipient.first_name, row.first_name),
        opened(Recipient.name, row.name),
        opened(Recipient.attributes, row.attributes) or {},
    )


class UnknownRecipientError(LookupError):
    """No live recipient has this ``user_id``: there never was one, or the person was erased.

    The web app answers it with 404 ``{"detail": "no such user"}`` (``notify.web.errors``).
    """

    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.user_id = user_id


# Load options that leave every encrypted column of a person unread until it is touched (each
# column whose type is one of notify.models.base's encrypted types): for work that must go on
# when a data key is missing, such as erasure and the console's page of a person.
ENCRYPTED_UNREAD = tuple(
    defer(getattr(Recipient, attribute.key))
    for attribute in Recipient.__mapper__.column_attrs
    if isinstance(attribute.columns[0].type, EncryptedText | EncryptedJSON)
)


def get_by_user_id(
    session: Session, user_id: str, *, defer_encrypted: bool = False
) -> Recipient | None:
    """The recipient with this ``user_id``, erased or not; None if there is none. With
    ``defer_encrypted`` the encrypted columns are not read (:data:`ENCRYPTED_UNREAD`), so a
    missing data key raises only if one of them is touched."""
    statement = select(Recipient).where(Recipient.user_id == user_id)
    if defer_encrypted:
        statement = statement.options(*ENCRYPTED_UNREAD)
    return session.scalars(statement).one_or_none()


def address_of(session: Session, recipient_id: int) -> str | None:
    """The person's address (None if they have none), read and decrypted on its own, so a
    person loaded with ``defer_encrypted`` needs no other column decrypted;
    :class:`notify.crypto.UndecryptableError` if no data key of this process decrypts it."""
    ciphertext = session.scalar(select(stored(Recipient.email)).where(Recipient.id == recipient_id))
    address: str | None = opened(Recipient.email, ciphertext)
    return address


def address_hash_of(session: Session, recipient: Recipient, hash_key: str) -> str | None:
    """The keyed hash of the person's address, without decrypting it when it is stored
    (``email_hash``). A person stored before addresses were hashed has none: their address is
    decrypted and hashed. None when there is no address, or it cannot be decrypted."""
    if recipient.email_hash is not None:
        return recipient.email_hash
    try:
        address = address_of(session, recipient.id)
    except UndecryptableError:
        return None
    return None if address is None else address_hash(hash_key, address)


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
    values = send_values(user_id, email, hash_key)
    old_hash = session.scalar(_ADDRESS_HASH_OF_USER, {"user_id": user_id})
    recipient_id = int(session.execute(_upsert_statement(session), values).scalar_one())
    address_changed(session, old_hash, values["email_hash"])
    return recipient_id


def send_values(user_id: str, email: str, hash_key: str) -> dict[str, Any]:
    """The row a send with an address writes: the values of :func:`upsert_for_send`'s upsert,
    by column name (its ``created_at`` and ``public_id`` count only for a new person)."""
    now = utcnow()
    return {
        "user_id": user_id,
        "email": email,
        "email_hash": address_hash(hash_key, email),
        "public_id": new_public_id(),
        "created_at": now,
        "updated_at": now,
    }


def address_changed(session: Session, old_hash: str | None, new_hash: str) -> None:
    """After a send's upsert: a person whose address changed takes their suppression along
    (:func:`notify.people.suppressions.follow_person`); a new person has nothing to take."""
    if old_hash is not None and old_hash != new_hash:
        follow_person(session, old_hash, new_hash)


_UPSERTS: dict[bool, Any] = {}
_ADDRESS_HASH_OF_USER = select(Recipient.email_hash).where(
    Recipient.user_id == bindparam("user_id")
)  # built once: every send with an address runs it
SEND_PARAM_PREFIX = "person_"  # the bound parameters of :func:`send_upsert_ctes`


def _on_known_user(statement: Any) -> Any:
    """What a send's upsert changes when the ``user_id`` is known: the address, its hash and
    ``updated_at``; the person's id, public id, creation time and everything else stay."""
    return statement.on_conflict_do_update(
        index_elements=["user_id"],
        set_={
            "email": statement.excluded.email,
            "email_hash": statement.excluded.email_hash,
            "updated_at": statement.excluded.updated_at,
        },
    )


def _upsert_statement(session: Session) -> Any:
    """The recipient upsert of :func:`upsert_for_send`, built once per dialect: its values are
    bound at execution, so SQLAlchemy's statement cache serves every later call."""
    postgres = on_postgresql(session)
    if postgres not in _UPSERTS:
        table = Recipient.__table__
        _UPSERTS[postgres] = _on_known_user(insert_on_conflict(session, table)).returning(
            table.c.id
        )
    return _UPSERTS[postgres]


def send_upsert_ctes() -> tuple[CTE, CTE]:
    """:func:`upsert_for_send` with an address as two CTEs of a larger PostgreSQL statement:
    ``earlier`` holds the user's address hash as it was before the statement (no row for a new
    user), ``person`` the recipient's id after the upsert. Its bound parameters are the keys
    of :func:`send_values` with :data:`SEND_PARAM_PREFIX` before them; the caller calls
    :func:`address_changed` with the two hashes afterwards."""
    table = cast(Table, Recipient.__table__)
    values = {
        column: bindparam(SEND_PARAM_PREFIX + column, type_=table.c[column].type)
        for column in ("user_id", "email", "email_hash", "public_id", "created_at", "updated_at")
    }
    earlier = (
        select(Recipient.email_hash.label("email_hash"))
        .where(Recipient.user_id == values["user_id"])
        .cte("earlier")
    )
    upsert = _on_known_user(postgresql.insert(table).values(values)).returning(table.c.id)
    return earlier, upsert.cte("person")
