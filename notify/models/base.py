"""Declarative base with a constraint naming convention (Alembic batch mode needs names)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Enum, MetaData, Text, TypeDecorator, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute
from sqlalchemy.sql.elements import Label

from notify import crypto

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, also on SQLite (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column_type(enum: type[StrEnum], name: str, length: int = 20) -> Enum:
    """A status-like column typed by ``enum``: stored as its values in a VARCHAR (no native
    database enum), refused by a CHECK constraint named after ``name`` for any other value, and
    read back as members of ``enum``. Adding a member needs a migration of that constraint (on
    SQLite a table rebuild, which ``migrations/env.py`` makes safe)."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


class EncryptedText(TypeDecorator[str]):
    """Text encrypted with the process's data keys (``notify.crypto``); NULL stays NULL.

    Equality lookups cannot work on it: search by a keyed hash column instead.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.decrypt(value)


class EncryptedJSON(TypeDecorator[dict[str, Any]]):
    """A JSON object, encrypted like :class:`EncryptedText`."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return crypto.encrypt(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        loaded: dict[str, Any] = json.loads(crypto.decrypt(value))
        return loaded


def _encrypted(column: InstrumentedAttribute[Any]) -> EncryptedText | EncryptedJSON:
    encrypted = column.type
    if not isinstance(encrypted, EncryptedText | EncryptedJSON):
        raise TypeError(f"{column.key} is not an encrypted column")
    return encrypted


def stored(column: InstrumentedAttribute[Any]) -> Label[str]:
    """An encrypted column as it is stored (its ciphertext), under the column's own name.

    A read that selects this instead of the column decrypts each row with :func:`opened`, so
    one value no configured key decrypts raises for that row only, not for the whole result.
    """
    _encrypted(column)
    return type_coerce(column, Text).label(column.key)


def opened(column: InstrumentedAttribute[Any], ciphertext: str | None) -> Any:
    """The plain value of ``ciphertext``, read with :func:`stored` from ``column``;
    :class:`notify.crypto.UndecryptableError` if no configured key decrypts it."""
    return _encrypted(column).process_result_value(ciphertext, None)  # type: ignore[arg-type]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
    }
