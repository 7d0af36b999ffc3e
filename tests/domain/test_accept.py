"""Accepting a notification (``outbox.accept``) on PostgreSQL and SQLite, with sessions that
commit: the idempotency key, the recipient's address, and two requests with one key at once.

On PostgreSQL a request with an address is one statement; these tests hold it to what the
statements of the SQLite path do."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select, text

from notify.delivery import outbox
from notify.delivery.outbox import Accepted, IdempotencyConflictError, NotificationRequest
from notify.message.templates import get_template
from notify.models import (
    ConsentSource,
    IdempotencyKey,
    Notification,
    Recipient,
    SuppressionReason,
)
from notify.people import suppressions
from notify.people.consent import Origin
from notify.producers import api_keys
from tests.domain.people import HASH_KEY
from tests.support.services import statements_run, wait_until, waiting_for_a_lock

LIMITS: dict[str, Any] = {"max_data_bytes": 16_384, "hash_key": HASH_KEY}


def _request(user_id: str, email: str | None, key: str | None = None, **data: str) -> Any:
    sample = dict(get_template("security_alert").sample)
    return NotificationRequest("security_alert", user_id, email, {**sample, **data}, key)


def _key(sessions: Any) -> int:
    with sessions.begin() as session:
        key, _ = api_keys.create_key(session, "accept-tests", ["notifications:send"])
        return int(key.id)


def _counts(sessions: Any) -> tuple[int, int]:
    with sessions() as session:
        rows = session.scalar(select(func.count()).select_from(Notification))
        keys = session.scalar(select(func.count()).select_from(IdempotencyKey))
        return int(rows or 0), int(keys or 0)


def _address_of(sessions: Any, user_id: str) -> str | None:
    with sessions() as session:
        address: str | None = session.scalar(
            select(Recipient.email).where(Recipient.user_id == user_id)
        )
        return address


def test_on_postgresql_a_new_request_with_an_address_is_one_statement(own_postgres: Any) -> None:
    """The recipient, the key and the row in one statement before the commit; the row holds
    what the request carried."""
    key_id = _key(own_postgres)
    request = _request("acc-0", "zero@example.com", "k0", event="Signed in")
    with statements_run(own_postgres.kw["bind"]) as statements:
        made = outbox.accept(own_postgres, key_id, request, request_id="req-0", **LIMITS)
    assert len(statements) == 1 and statements[0].lstrip().startswith("WITH")
    with own_postgres() as session:
        row = session.get_one(Notification, made.id)
        assert (row.request_id, row.data, row.status) == ("req-0", request.data, "queued")
        assert row.api_key_id == key_id
        stored = session.execute(
            text("SELECT data FROM notifications WHERE id = :id"), {"id": made.id}
        ).scalar_one()
        assert "Signed in" not in stored  # encrypted at rest, as through the ORM


def test_a_repeat_with_its_key_writes_nothing_and_a_different_request_is_refused(
    own_sessions: Any,
) -> None:
    key_id = _key(own_sessions)
    first = outbox.accept(own_sessions, key_id, _request("acc-1", "old@example.com", "k"), **LIMITS)
    assert first.created and first.status == "queued"
    newer = outbox.accept(own_sessions, key_id, _request("acc-1", "new@example.com"), **LIMITS)
    assert newer.created  # no key: a second notification, and the address changes
    assert _address_of(own_sessions, "acc-1") == "new@example.com"

    repeat = outbox.accept(
        own_sessions, key_id, _request("acc-1", "old@example.com", "k"), **LIMITS
    )
    assert (repeat.id, repeat.created) == (first.id, False)
    # The repeat carries the address of its time: it must not take the person back to it.
    assert _address_of(own_sessions, "acc-1") == "new@example.com"
    with pytest.raises(IdempotencyConflictError):
        outbox.accept(
            own_sessions, key_id, _request("acc-1", "other@example.com", "k", event="x"), **LIMITS
        )
    assert _address_of(own_sessions, "acc-1") == "new@example.com"
    assert _counts(own_sessions) == (2, 1)
    other_key = _key(own_sessions)  # a key is one key's: another may use the same text
    assert outbox.accept(own_sessions, other_key, _request("acc-1", None, "k"), **LIMITS).created


def test_a_new_address_is_suppressed_as_the_persons_old_one_was(own_sessions: Any) -> None:
    outbox.accept(own_sessions, None, _request("acc-2", "first@example.com"), **LIMITS)
    with own_sessions.begin() as session:
        reason, origin = SuppressionReason.COMPLAINT, Origin(ConsentSource.API)
        assert suppressions.suppress(session, HASH_KEY, "first@example.com", reason, origin)
    outbox.accept(own_sessions, None, _request("acc-2", "second@example.com"), **LIMITS)
    with own_sessions() as session:
        moved = suppressions.lookup(session, HASH_KEY, "second@example.com")
        assert moved is not None and moved.reason == SuppressionReason.COMPLAINT


@pytest.mark.parametrize("first_commits", [True, False], ids=["commits", "rolls-back"])
def test_two_requests_with_one_key_at_once_make_one_notification(
    own_postgres: Any, first_commits: bool
) -> None:
    """PostgreSQL, read committed: the second request waits on the first one's key. When the
    first commits, the second answers as a repeat and writes nothing; when it rolls back, the
    second makes the notification."""
    sessions = own_postgres
    key_id = _key(sessions)
    request = _request("acc-3", "both@example.com", "same")
    first = sessions()
    first.begin()
    made = outbox.submit(first, key_id, request, **LIMITS)  # holds the key, not committed
    answers: list[Accepted] = []

    def second() -> None:
        answers.append(outbox.accept(sessions, key_id, request, **LIMITS))

    thread = threading.Thread(target=second)
    thread.start()
    wait_until(lambda: waiting_for_a_lock(sessions), 10, "the second request to wait on the key")
    if first_commits:
        first.commit()
    else:
        first.rollback()
    first.close()
    thread.join(10)
    assert len(answers) == 1
    if first_commits:
        assert (answers[0].id, answers[0].created) == (made.id, False)
    else:
        assert answers[0].created and answers[0].id != made.id
    assert _counts(sessions) == (1, 1)


def test_the_one_statement_binds_every_column_the_plain_statements_write() -> None:
    """The PostgreSQL statement names its columns once; the rows the SQLite path writes must
    have exactly those, or one engine would store what the other drops."""
    request = _request("acc-4", "four@example.com", "k4")
    checked = outbox._check(7, request, LIMITS["max_data_bytes"])
    row = outbox._notification_values(checked, 7, request, 1, "req-4")
    assert tuple(row) == outbox._QUEUED_ROW_COLUMNS
    assert tuple(outbox._key_values(7, checked, row)) == outbox._KEY_COLUMNS
