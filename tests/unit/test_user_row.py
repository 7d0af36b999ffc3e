"""One user-row model for the API and the import; bad rows are reported, never raised."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from notify import crypto
from notify.db import SessionFactory, make_engine, make_session_factory
from notify.models import Base, Recipient
from notify.models.base import utcnow
from notify.people import recipients
from notify.people.importing import import_users
from notify.people.user_row import UserFields, UserRow, problem_line
from notify.web.errors import install_error_handlers
from notify.web.schemas import UserIn

GOOD = {"user_id": "u-1", "email": "Ada@Example.COM", "locale": "pt-BR", "timezone": "UTC"}


def problem(fields: dict[str, Any], model: type[UserFields] = UserRow) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(fields)
    line = problem_line(caught.value)
    assert "\n" not in line
    return line


def test_a_good_row_is_normalised() -> None:
    row = UserRow.model_validate(GOOD)
    assert row.model_dump() == {
        "user_id": "u-1",
        "email": "Ada@example.com",
        "locale": "pt-BR",
        "timezone": "UTC",
        "first_name": None,
        "name": None,
        "attributes": None,
    }


@pytest.mark.parametrize("field", ["user_id", "email", "locale", "timezone"])
def test_a_nul_character_is_refused_in_every_field(field: str) -> None:
    value = {**GOOD, field: "a\x00b"}
    assert problem(value).startswith(f"{field}: ")


def test_user_id_rules() -> None:
    assert problem({**GOOD, "user_id": "x" * 201}).startswith("user_id: ")
    assert problem({**GOOD, "user_id": "a b"}).startswith("user_id: must be 1 to 200")
    assert problem({**GOOD, "user_id": "a/b"}).startswith("user_id: ")
    assert problem({**GOOD, "user_id": ""}).startswith("user_id: ")
    assert UserRow.model_validate({**GOOD, "user_id": "x" * 200}).user_id == "x" * 200
    assert UserRow.model_validate({**GOOD, "user_id": 42}).user_id == "42"


def test_bad_values_name_their_field() -> None:
    assert problem({**GOOD, "email": "not-an-address"}).startswith("email: ")
    assert problem({**GOOD, "email": "a@" + "b" * 320 + ".com"}).startswith("email: ")
    assert problem({**GOOD, "timezone": "Mars/Olympus"}) == (
        "timezone: is not an IANA time zone such as Europe/London"
    )
    assert problem({**GOOD, "timezone": "Europe/" + "x" * 60}).startswith("timezone: ")
    assert problem({**GOOD, "locale": "english!"}) == (
        "locale: is not a language tag such as en or pt-BR"
    )
    assert problem({**GOOD, "locale": "en-" + "x" * 40}).startswith("locale: ")
    assert problem({"user_id": "u-1"}) == "email: required"


def test_other_import_fields_become_attributes_and_every_problem_is_on_one_line() -> None:
    row = UserRow.model_validate({**GOOD, "phone": "1", "seats": 3, "plan": ""})
    assert row.attributes == {"phone": "1", "seats": 3}  # an empty cell gives no attribute
    line = problem({"user_id": "a b", "email": "x", "nick\nname": 1})
    assert line.startswith("email: ") and "; user_id: must be 1 to 200" in line
    assert "attributes: key 'nick\\nname' must start with a letter" in line
    assert problem({"email": "a@example.com", "phone": "1"}, UserIn) == "unknown field 'phone'"


def test_an_empty_locale_or_time_zone_keeps_the_stored_one_only_in_an_import() -> None:
    row = UserRow.model_validate({**GOOD, "locale": "", "timezone": None})
    assert row.locale is None and row.timezone is None
    assert problem({"email": "a@example.com", "locale": ""}, UserIn).startswith("locale: ")


def test_the_api_body_is_the_shared_model_without_a_user_id() -> None:
    assert issubclass(UserIn, UserFields)
    assert problem({**GOOD}, UserIn) == "unknown field 'user_id'"
    body = UserIn.model_validate({"email": "ada@example.com"})
    assert (body.locale, body.timezone) == (None, None)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[SessionFactory]:
    crypto.install([Fernet.generate_key().decode()])
    engine = make_engine(f"sqlite:///{tmp_path}/t.sqlite")
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def stored(sessions: SessionFactory) -> dict[str, tuple[str | None, str | None, str | None]]:
    with sessions() as session:
        people = session.scalars(select(Recipient)).all()
        return {p.user_id: (p.email, p.locale, p.timezone) for p in people}


def test_a_csv_import_reports_bad_lines_and_keeps_the_good_ones(
    sessions: SessionFactory,
) -> None:
    lines = [
        "user_id,email,locale,timezone",
        "good-1,one@example.com,en,Europe/London",
        "bad\x00id,nul@example.com,en,UTC",
        f"{'x' * 201},long@example.com,en,UTC",
        "bad-address,not-an-address,en,UTC",
        "bad-zone,zone@example.com,en,Mars/Olympus",
        "good-2,two@example.com,,",
    ]
    result = import_users(sessions, lines, "csv", hash_key="k")
    assert (result.imported, result.rejected) == (2, 4)
    reported = {error.line: error.error for error in result.errors}
    assert sorted(reported) == [3, 4, 5, 6]
    assert reported[3].startswith("user_id: ")
    assert reported[4].startswith("user_id: ")
    assert reported[5].startswith("email: ")
    assert reported[6].startswith("timezone: ")
    assert stored(sessions) == {
        "good-1": ("one@example.com", "en", "Europe/London"),
        "good-2": ("two@example.com", None, None),
    }

    # An empty locale or time zone keeps the stored one; a given one replaces it.
    again = import_users(
        sessions, ["good-1,new@example.com,,", "good-2,two@example.com,fr,"], "csv", hash_key="k"
    )
    assert (again.imported, again.rejected) == (2, 0)
    assert stored(sessions)["good-1"] == ("new@example.com", "en", "Europe/London")
    assert stored(sessions)["good-2"] == ("two@example.com", "fr", None)


def test_a_json_lines_import_reports_a_nul_in_an_address(sessions: SessionFactory) -> None:
    rows: list[dict[str, Any]] = [
        {"user_id": "j-1", "email": "j1@example.com"},
        {"user_id": "j-2", "email": "j2\x00@example.com"},
        {"user_id": "j-3", "email": "j3@example.com", "locale": "de", "timezone": "UTC"},
        {"user_id": "j-4", "email": "j4@example.com", "timezone": "Europe/Lon\x00don"},
        {"user_id": "j-5", "email": "j5@example.com", "shoe_size": 44},
    ]
    lines = [json.dumps(row) for row in rows]
    result = import_users(sessions, lines, "jsonl", hash_key="k")
    assert (result.imported, result.rejected) == (3, 2)
    assert [(error.line, error.error.split(":")[0]) for error in result.errors] == [
        (2, "email"),
        (4, "timezone"),
    ]
    assert set(stored(sessions)) == {"j-1", "j-3", "j-5"}  # shoe_size became an attribute


def test_require_live_refuses_unknown_and_erased_people(sessions: SessionFactory) -> None:
    with sessions.begin() as session:
        recipients.upsert(session, "alive", email="a@example.com", hash_key="k")
        gone, _ = recipients.upsert(session, "gone", email="g@example.com", hash_key="k")
        gone.erased_at = utcnow()
    with sessions() as session:
        assert recipients.require_live(session, "alive").user_id == "alive"
        for user_id in ("gone", "nobody"):
            with pytest.raises(recipients.UnknownRecipientError):
                recipients.require_live(session, user_id)


def test_an_unknown_recipient_is_answered_with_404() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/people/{user_id}")
    def person(user_id: str) -> None:
        raise recipients.UnknownRecipientError(user_id)

    response = TestClient(app).get("/people/ada")
    assert response.status_code == 404
    assert response.json() == {"detail": "no such user"}
