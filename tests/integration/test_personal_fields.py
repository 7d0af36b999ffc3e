"""A person's first name, name and attributes through the real API and PostgreSQL: set, read,
kept, cleared, exported, encrypted at rest and removed by erasure."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from notify.people.user_row import MAX_ATTRIBUTES_BYTES
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def stored_columns(stack: Stack, user_id: str) -> tuple[Any, ...]:
    """The three columns as the database holds them (no decryption)."""
    with stack.sessions() as session:
        row = session.execute(
            text("SELECT first_name, name, attributes FROM recipients WHERE user_id = :u"),
            {"u": user_id},
        ).one()
    return tuple(row)


def test_personal_fields_are_set_kept_cleared_exported_encrypted_and_erased(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = f"pf-{uuid.uuid4().hex[:10]}"
    marker = uuid.uuid4().hex[:10]
    fields = {
        "first_name": f"Ada{marker}",
        "name": f"Ada Lovelace {marker}",
        "attributes": {"plan": f"pro{marker}", "seats": 3, "beta": True},
    }
    created = client.put(
        f"/v1/users/{user_id}", json={"email": f"{user_id}@example.com", **fields}, headers=auth
    )
    assert created.status_code == 201, created.text
    got = client.get(f"/v1/users/{user_id}", headers=auth).json()
    assert {key: got[key] for key in fields} == fields

    raw = stored_columns(stack, user_id)
    assert all(value is not None for value in raw)
    assert not any(marker in value for value in raw)  # encrypted at rest, like the address

    kept = client.put(
        f"/v1/users/{user_id}", json={"email": f"{user_id}@example.org"}, headers=auth
    )
    assert {key: kept.json()[key] for key in fields} == fields  # absent fields are kept

    export = client.get(f"/v1/users/{user_id}/export", headers=auth).json()["profile"]
    assert {key: export[key] for key in fields} == fields

    cleared = client.put(
        f"/v1/users/{user_id}",
        json={"email": f"{user_id}@example.org", "first_name": "", "attributes": {}},
        headers=auth,
    ).json()
    assert (cleared["first_name"], cleared["name"], cleared["attributes"]) == (
        None,
        fields["name"],
        {},
    )

    assert client.delete(f"/v1/users/{user_id}", headers=auth).status_code == 204
    with stack.sessions() as session:
        erased = session.execute(
            text(
                "SELECT first_name, name, attributes FROM recipients "
                "WHERE erased_at IS NOT NULL AND user_id LIKE 'erased:%' AND name IS NULL "
                "AND first_name IS NULL AND attributes IS NULL AND email IS NULL"
            )
        ).all()
    assert erased  # the erased row keeps none of the fields
    assert client.get(f"/v1/users/{user_id}", headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"first_name": "Ada\nBcc: x@example.com"}, "first_name", "one line of text"),
        ({"name": "x" * 201}, "name", "at most 200"),
        ({"attributes": {"bad key": 1}}, "attributes", "must start with a letter"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes", "not a list or object"),
        ({"attributes": {"n": float("inf")}}, "attributes", ""),
        (
            {"attributes": {f"k{i}": "x" * 900 for i in range(5)}},
            "attributes",
            f"at most {MAX_ATTRIBUTES_BYTES}",
        ),
        ({"attributes": {f"k{i}": i for i in range(51)}}, "attributes", "at most 50 attributes"),
        ({"attributes": ["plan"]}, "attributes", ""),
    ],
)
def test_bad_personal_fields_get_a_422_that_names_the_field_and_store_nothing(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], field: str, says: str
) -> None:
    user_id = f"pf-bad-{uuid.uuid4().hex[:10]}"
    if body.get("attributes") == {"n": float("inf")}:
        answer = client.put(
            f"/v1/users/{user_id}",
            content=b'{"email": "a@example.com", "attributes": {"n": Infinity}}',
            headers={**auth, "Content-Type": "application/json"},
        )
    else:
        answer = client.put(
            f"/v1/users/{user_id}", json={"email": "a@example.com", **body}, headers=auth
        )
    assert 400 <= answer.status_code < 500, answer.text
    assert field in answer.text and says in answer.text
    assert client.get(f"/v1/users/{user_id}", headers=auth).status_code == 404
