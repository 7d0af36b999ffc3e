"""The user import (notify.people.importing) on PostgreSQL and SQLite: names and attributes
from a header row, kept by empty cells, attributes merged key by key on a re-import."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notify.models import Recipient
from notify.people.importing import import_users


def _import(session: Session, lines: list[str], fmt: str = "csv") -> tuple[int, int]:
    # The import's own transactions become savepoints of the test's, which is rolled back.
    sessions = sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    result = import_users(sessions, lines, fmt, hash_key="k")  # type: ignore[arg-type]
    return result.imported, result.rejected


def _person(session: Session, user_id: str) -> tuple[Any, ...]:
    session.expire_all()
    row = session.execute(
        select(Recipient.first_name, Recipient.name, Recipient.attributes, Recipient.locale).where(
            Recipient.user_id == user_id
        )
    ).one()
    return tuple(row)


def test_a_header_row_maps_names_and_makes_the_other_columns_attributes(session: Session) -> None:
    imported = _import(
        session,
        [
            "user_id,email,first_name,name,plan,seats,locale",
            "imp-1,one@example.com,Ada,Ada Lovelace,pro,3,en",
            "imp-2,two@example.com,,,,,",
            "imp-3,three@example.com,A\x00da,,,,",
        ],
    )
    assert imported == (2, 1)
    assert _person(session, "imp-1") == ("Ada", "Ada Lovelace", {"plan": "pro", "seats": "3"}, "en")
    assert _person(session, "imp-2") == (None, None, None, None)


def test_a_re_import_keeps_what_empty_cells_leave_and_merges_attributes(session: Session) -> None:
    _import(
        session,
        [
            "user_id,email,first_name,plan,team",
            "imp-4,four@example.com,Grace,pro,red",
        ],
    )
    _import(
        session,
        [
            "user_id,email,first_name,plan,region",
            "imp-4,four@example.com,,enterprise,eu",
        ],
    )
    first_name, _, attributes, _ = _person(session, "imp-4")
    assert first_name == "Grace"
    assert attributes == {"plan": "enterprise", "team": "red", "region": "eu"}


def test_json_lines_keep_numbers_and_true_false_in_attributes(session: Session) -> None:
    imported = _import(
        session,
        [
            '{"user_id": "imp-5", "email": "five@example.com", "first_name": "Zoë", "seats": 4,'
            ' "beta": true, "attributes": {"plan": "free"}}',
            '{"user_id": "imp-6", "email": "six@example.com", "tags": ["a"]}',
        ],
        "jsonl",
    )
    assert imported == (1, 1)
    assert _person(session, "imp-5")[2] == {"plan": "free", "seats": 4, "beta": True}
