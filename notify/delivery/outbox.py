"""The outbox: accepting a notification, claiming it for sending, recording how it ended.

Data functions take the session first and never commit; the request or task owns the
transaction. The claim is a compare-and-set (``queued → sending``), so a task delivered twice
by the broker sends once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from notify.crypto import UndecryptableError
from notify.db import SessionFactory, on_postgresql, unindexed
from notify.message.jobs import Claimed
from notify.message.mime import new_message_id
from notify.message.template_data import InvalidFieldError, check_data
from notify.message.templates import EmailTemplate, get_template
from notify.models import IdempotencyKey, Notification, NotificationStatus, Recipient
from notify.models.base import opened, stored, utcnow
from notify.models.notifications import new_notification_id, with_ids
from notify.people import eligibility, recipients
from notify.producers.callbacks import events as callback_events
from notify.producers.callbacks.events import EventType, NotificationChange

Status = NotificationStatus
_INSERT_NOTIFICATION = insert(cast(Table, Notification.__table__))


class IdempotencyConflictError(Exception):
    """The idempotency key was used before with a different request."""


@dataclass(frozen=True)
class NotificationRequest:
    template: str
    user_id: str
    email: str | None
    data: dict[str, Any]
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        canonical = json.dumps(
            [self.template, self.user_id, self.email, self.data],
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_BY_IDEMPOTENCY_KEY = (
    select(Notification.id, Notification.category, Notification.status, IdempotencyKey.request_hash)
    .join(
        Notification,
        and_(
            Notification.id == IdempotencyKey.notification_id,
            Notification.created_at == IdempotencyKey.notification_created_at,  # its partition
        ),
    )
    .where(
        IdempotencyKey.api_key_id == bindparam("api_key_id"),
        IdempotencyKey.idempotency_key == bindparam("idempotency_key"),
    )
)  # built once: every request with a key runs it
_INSERT_IDEMPOTENCY_KEY = insert(cast(Table, IdempotencyKey.__table__))


def find_by_idempotency_key(session: Session, api_key_id: int, idempotency_key: str) -> Any:
    """The earlier notification this key made with ``idempotency_key`` (its ``id``,
    ``category``, ``status`` and ``request_hash``), or None."""
    return session.execute(
        _BY_IDEMPOTENCY_KEY, {"api_key_id": api_key_id, "idempotency_key": idempotency_key}
    ).one_or_none()


@dataclass(frozen=True)
class Accepted:
    """The answer to a submission: the notification, and whether this call created it."""

    id: str
    category: str
    status: str
    created: bool


def _same_request(existing: Any, fingerprint: str) -> Accepted:
    if existing.request_hash != fingerprint:
        raise IdempotencyConflictError
    return Accepted(existing.id, existing.category, existing.status, created=False)


@dataclass(frozen=True)
class _Checked:
    """A request that passed the checks made before anything is written."""

    template: EmailTemplate
    key: str | None  # the idempotency key, when a key sent it with one
    fingerprint: str  # "" without a key


def _check(api_key_id: int | None, request: NotificationRequest, max_data_bytes: int) -> _Checked:
    """Raises ``TemplateNotFoundError`` or :class:`InvalidFieldError` for a request that cannot
    be sent, before anything is written."""
    template = get_template(request.template)
    check_data(template, request.data, max_data_bytes)
    key = request.idempotency_key if api_key_id is not None else None
    return _Checked(template, key or None, request.fingerprint() if key else "")


_QUEUED_ROW_COLUMNS = (
    "id", "api_key_id", "recipient_id", "template", "category", "data", "status", "attempts",
    "next_attempt_at", "created_at", "updated_at", "request_id",
)  # fmt: skip


_KEY_COLUMNS = (
    "api_key_id", "idempotency_key", "request_hash", "notification_id", "notification_created_at",
)  # fmt: skip


def _notification_values(
    checked: _Checked,
    api_key_id: int | None,
    request: NotificationRequest,
    recipient_id: int | None,
    request_id: str | None,
) -> dict[str, Any]:
    """The queued row a request makes, by column name; its id carries ``created_at``."""
    now = utcnow()
    values = {
        "id": new_notification_id(now),  # carries ``created_at``: its month's partition
        "api_key_id": api_key_id,
        "recipient_id": recipient_id,
        "template": checked.template.name,
        "category": checked.template.category.key,
        "data": request.data,
        "status": Status.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        "request_id": request_id,
    }
    return values  # the keys of _QUEUED_ROW_COLUMNS, which the one-statement accept binds


def _key_values(
    api_key_id: int | None, checked: _Checked, row: Mapping[str, Any]
) -> dict[str, Any]:
    """The idempotency key's row for a notification row; its keys are :data:`_KEY_COLUMNS`."""
    return {
        "api_key_id": api_key_id,
        "idempotency_key": checked.key,
        "request_hash": checked.fingerprint,
        "notification_id": row["id"],
        "notification_created_at": row["created_at"],
    }


def submit(
    session: Session,
    api_key_id: int | None,
    request: NotificationRequest,
    *,
    max_data_bytes: int,
    hash_key: str,
    request_id: str | None = None,
) -> Accepted:
    """Store a queued notification in the caller's transaction; ``request_id`` is kept for the
    worker's log lines about it.

    A repeat of an earlier request with the same idempotency key returns the earlier row; a
    different request with that key raises :class:`IdempotencyConflictError`. Raises
    ``TemplateNotFoundError`` and :class:`InvalidFieldError` before writing anything. Costs one
    statement for the recipient and one for the row (plus, when a key is given, one lookup and
    one insert of the key, whose primary key is what two requests with one key race on).
    """
    checked = _check(api_key_id, request, max_data_bytes)
    if api_key_id is not None and checked.key:
        existing = find_by_idempotency_key(session, api_key_id, checked.key)
        if existing is not None:
            return _same_request(existing, checked.fingerprint)
    recipient_id = recipients.upsert_for_send(
        session, request.user_id, email=request.email, hash_key=hash_key
    )
    if recipient_id is None:
        raise InvalidFieldError(("email",), "is required for a user this service does not know yet")
    row = _notification_values(checked, api_key_id, request, recipient_id, request_id)
    session.execute(_INSERT_NOTIFICATION, row)  # one statement object: its compiled form is cached
    if checked.key:
        session.execute(_INSERT_IDEMPOTENCY_KEY, _key_values(api_key_id, checked, row))
    return Accepted(row["id"], row["category"], Status.QUEUED.value, created=True)


@cache
def _accept_statement(with_key: bool) -> Any:
    """PostgreSQL: :func:`submit` of a request with an address as one statement, built once.

    Data-modifying CTEs upsert the recipient (:func:`recipients.send_upsert_ctes`), insert the
    idempotency key when there is one (``ON CONFLICT DO NOTHING``: a key taken before, or by a
    concurrent request that commits first, inserts nothing) and insert the notification only
    if the key went in. The statement returns the user's address hash from before it
    (``old_hash``) and whether the notification went in (``inserted``). Bound parameters: the
    notification's columns prefixed ``row_``, the key's ``key_``, the recipient's
    :data:`recipients.SEND_PARAM_PREFIX` (never a bare column name: SQLAlchemy would add a
    parameter named as a column to every INSERT of the statement that lacks that column)."""
    earlier, person = recipients.send_upsert_ctes()
    table = cast(Table, Notification.__table__)
    names = list(_QUEUED_ROW_COLUMNS)
    row = select(
        *[
            person.c.id
            if name == "recipient_id"
            else bindparam(f"row_{name}", type_=table.c[name].type)
            for name in names
        ]
    )
    statement = select(select(earlier.c.email_hash).scalar_subquery().label("old_hash"))
    if with_key:
        keys = cast(Table, IdempotencyKey.__table__)
        taken = (
            postgresql.insert(keys)
            .values({n: bindparam(f"key_{n}", type_=keys.c[n].type) for n in _KEY_COLUMNS})
            .on_conflict_do_nothing()
            .returning(keys.c.notification_id)
            .cte("taken")
        )
        row = row.where(exists(select(taken.c.notification_id)))
        statement = statement.add_cte(taken)
    inserted = _INSERT_NOTIFICATION.from_select(names, row).returning(table.c.id).cte("inserted")
    return (
        statement.add_columns(exists(select(inserted.c.id)).label("inserted"))
        .add_cte(person)
        .add_cte(inserted)
    )


def _submit_at_once(
    session: Session,
    api_key_id: int | None,
    request: NotificationRequest,
    email: str,
    *,
    max_data_bytes: int,
    hash_key: str,
    request_id: str | None,
) -> Accepted | None:
    """:func:`submit` on PostgreSQL for a request with an address, in one statement
    (:func:`_accept_statement`) and the caller's transaction; None when its idempotency key
    was taken, and then the caller rolls back (which also undoes the recipient's upsert)."""
    checked = _check(api_key_id, request, max_data_bytes)
    person = recipients.send_values(request.user_id, email, hash_key)
    row = _notification_values(checked, api_key_id, request, None, request_id)
    del row["recipient_id"]  # the upsert's, inside the statement
    parameters = {f"row_{k}": v for k, v in row.items()}
    parameters.update({recipients.SEND_PARAM_PREFIX + k: v for k, v in person.items()})
    if checked.key:
        parameters.update({f"key_{k}": v for k, v in _key_values(api_key_id, checked, row).items()})
    found = session.execute(_accept_statement(bool(checked.key)), parameters).one()
    if not found.inserted:
        return None
    recipients.address_changed(session, found.old_hash, person["email_hash"])
    return Accepted(row["id"], row["category"], Status.QUEUED.value, created=True)


def accept_in(
    session: Session,
    api_key_id: int | None,
    request: NotificationRequest,
    *,
    max_data_bytes: int,
    hash_key: str,
    request_id: str | None = None,
) -> Accepted:
    """:func:`submit` and commit, on a session the caller opened (and closes).

    On PostgreSQL a request with an address is one statement and the commit
    (:func:`_submit_at_once`). Two concurrent requests with one idempotency key race on the
    key's primary key: the one that loses (its key taken, or an integrity error) rolls back,
    reads the winner's row and answers as a repeat would, so a repeat never changes the
    recipient. Any other integrity error of a request without a key is raised, rolled back.
    """
    try:
        if request.email is not None and on_postgresql(session):
            accepted = _submit_at_once(
                session,
                api_key_id,
                request,
                request.email,
                max_data_bytes=max_data_bytes,
                hash_key=hash_key,
                request_id=request_id,
            )
        else:
            accepted = submit(
                session,
                api_key_id,
                request,
                max_data_bytes=max_data_bytes,
                hash_key=hash_key,
                request_id=request_id,
            )
        if accepted is not None:
            session.commit()
            return accepted
    except IntegrityError:
        session.rollback()
        if api_key_id is None or not request.idempotency_key:
            raise
    session.rollback()  # a taken key: nothing of this request stays
    assert api_key_id is not None and request.idempotency_key  # only a key is ever taken
    existing = find_by_idempotency_key(session, api_key_id, request.idempotency_key)
    session.commit()
    if existing is None:  # the winner rolled back, or its row was removed since
        raise IdempotencyConflictError
    return _same_request(existing, request.fingerprint())


def accept(
    sessions: SessionFactory,
    api_key_id: int | None,
    request: NotificationRequest,
    *,
    max_data_bytes: int,
    hash_key: str,
    request_id: str | None = None,
) -> Accepted:
    """:func:`accept_in` on a session of its own."""
    with sessions() as session:
        return accept_in(
            session,
            api_key_id,
            request,
            max_data_bytes=max_data_bytes,
            hash_key=hash_key,
            request_id=request_id,
        )


# For reads of a notification's status: its template data is left unread, so a row that no data
# key decrypts (see notify.delivery.outcomes.record_undecryptable) still reports its status.
WITHOUT_DATA = defer(Notification.data)


def get_for_caller(session: Session, notification_id: str, api_key_id: int) -> Notification | None:
    """A notification, only if the calling key made it; its encrypted ``data`` is not read
    (:data:`WITHOUT_DATA`)."""
    return session.scalars(
        select(Notification)
        .options(WITHOUT_DATA)
        .where(with_ids([notification_id]), Notification.api_key_id == api_key_id)
    ).one_or_none()


@dataclass(frozen=True)
class Undecryptable:
    """A row the claim took that none of this process's data keys decrypts (its data or its
    recipient's fields): the caller records its outcome
    (:func:`notify.delivery.outcomes.record_undecryptable`)."""

    id: str
    category: str
    attempts: int  # counting the claim that took it
    request_id: str | None = None


@dataclass(frozen=True)
class ClaimedGroup:
    """What a claim took, in the order asked for: the messages to build, and the rows that
    cannot be decrypted here."""

    ready: list[Claimed]
    undecryptable: list[Undecryptable]


def claim(session: Session, notification_id: str, *, sending_domain: str) -> Claimed | None:
    """Move one notification ``queued → sending`` and return it, or None if it was not queued
    (:func:`claim_many` for one id). A row this process cannot decrypt is claimed and left
    ``sending`` with None returned; delivery uses :func:`claim_many`, which says so."""
    ready = claim_many(session, [notification_id], sending_domain=sending_domain).ready
    return ready[0] if ready else None


def claim_many(
    session: Session, notification_ids: Sequence[str], *, sending_domain: str
) -> ClaimedGroup:
    """Move the given notifications ``queued → sending`` in one statement (two on SQLite) and
    return those that were queued, in the order of ``notification_ids``.

    The conditional UPDATE is the guard against duplicate broker deliveries: of two workers
    holding the same id only one gets its row. Each row's Message-ID is made on its first claim
    and kept on every retry. The recipient's address, their preference for the category and the
    suppression list are read in the same statement (PostgreSQL) or the next one (SQLite), so
    a changed address or an unsubscribe committed while the message waited applies.

    Each row is decrypted on its own: one that none of this process's data keys decrypts is
    returned in ``undecryptable``, still ``sending``, for the caller to record, and never
    stops the others.
    """
    wanted = list(dict.fromkeys(notification_ids))
    if not wanted:
        return ClaimedGroup([], [])
    now = utcnow()
    person = (
        stored(Recipient.email),
        Recipient.public_id,
        Recipient.locale,
        Recipient.timezone,
        Recipient.erased_at,
        *recipients.STORED_PERSONAL_FIELDS,
        Recipient.quiet_hours_start,
        Recipient.quiet_hours_end,
        eligibility.suppression_of_address().label("suppression"),
        eligibility.stored_choice(Notification.category).label("subscribed"),
        eligibility.paused_at(Notification.category, now).label("paused"),
    )
    claimed = (
        update(Notification)
        .where(
            with_ids(wanted),
            unindexed(Notification.status) == Status.QUEUED,
            Notification.campaign_id.is_(None),  # campaign rows belong to their batch
        )
        .values(
            status=Status.SENDING,
            attempts=Notification.attempts + 1,
            claimed_at=now,
            updated_at=now,
            message_id=message_id_at_first_claim(wanted, sending_domain),
        )
        .execution_options(synchronize_session=False)
    )
    mine = (
        Notification.id,
        Notification.template,
        Notification.category,
        stored(Notification.data),
        Notification.attempts,
        Notification.message_id,
        Notification.recipient_id,
        Notification.created_at,
        Notification.request_id,
    )
    rows: list[Any]
    if on_postgresql(session):
        # One round trip: UPDATE … FROM recipients … RETURNING the person's fields too.
        statement = claimed.where(Notification.recipient_id == Recipient.id).returning(
            *mine, *person
        )
        rows = list(session.execute(statement))
    else:  # SQLite cannot return columns of a joined table: read them next
        first = {row.id: row for row in session.execute(claimed.returning(*mine))}
        if not first:
            return ClaimedGroup([], [])
        rest = {
            row.id: row
            for row in session.execute(
                select(Notification.id, *person)
                .join(Recipient, Recipient.id == Notification.recipient_id)
                .where(Notification.id.in_(list(first)))
            )
        }
        rows = [_Merged(first[key], rest[key]) for key in first]
    by_id = {row.id: row for row in rows}
    group = ClaimedGroup([], [])
    for key in wanted:
        if key not in by_id:
            continue
        row = by_id[key]
        try:
            group.ready.append(_claimed(row))
        except UndecryptableError:
            group.undecryptable.append(
                Undecryptable(key, row.category, row.attempts, row.request_id)
            )
    return group


def message_id_at_first_claim(notification_ids: Sequence[str], sending_domain: str) -> Any:
    """The ``message_id`` of a claim: the row's own if it has one (a retry keeps it), else a
    new one per row, keyed by id. Every claim (transactional and campaign) sets it this way."""
    fresh = {key: new_message_id(sending_domain) for key in notification_ids}
    return func.coalesce(Notification.message_id, case(fresh, value=Notification.id))


def _claimed(row: Any) -> Claimed:
    """The claimed message of a row read with the encrypted columns :func:`stored`;
    :class:`notify.crypto.UndecryptableError` if one of them cannot be decrypted."""
    return Claimed(
        id=row.id,
        template=row.template,
        category=row.category,
        data=opened(Notification.data, row.data),
        attempts=row.attempts,
        message_id=row.message_id,
        email=opened(Recipient.email, row.email),
        recipient_id=row.recipient_id,
        recipient_public_id=row.public_id,
        locale=row.locale,
        time_zone=row.timezone,
        erased=row.erased_at is not None,
        suppression=row.suppression,
        subscribed=row.subscribed,
        personal=recipients.personal_fields_of(row),
        created_at=row.created_at,
        request_id=row.request_id,
        paused=bool(row.paused),
        quiet_hours=(row.quiet_hours_start, row.quiet_hours_end),
    )


class _Merged:
    """Attribute access over two result rows (the SQLite claim's two statements)."""

    def __init__(self, *rows: Any) -> None:
        self._rows = rows

    def __getattr__(self, name: str) -> Any:
        for row in self._rows:
            if name in row._fields:
                return getattr(row, name)
        raise AttributeError(name)


# What a finished row reports to its key's callback endpoints (notify.producers.callbacks).
_REPORTED = (
    Notification.id,
    Notification.api_key_id,
    Notification.status,
    Notification.reason,
    Notification.template,
    Notification.category,
)


def _report(session: Session, rows: Sequence[Any], *kinds: EventType) -> int:
    """The callback events of rows that just changed, in the same transaction; nothing to
    read or write when no key sent them (a campaign's rows)."""
    changes = [
        NotificationChange(row[0], row[1], str(row[2]), row[3], row[4], row[5])
        for row in rows
        if row[1] is not None
    ]
    if not changes:
        return 0
    return sum(callback_events.notifications_changed(session, kind, changes) for kind in kinds)


def _finish(
    session: Session,
    notification_id: str,
    status: Status,
    reason: str | None,
    *reported: EventType,
    **extra: Any,
) -> bool:
    """Leave ``sending`` for ``status`` and queue the ``reported`` callback events; False if
    the row was not ours any more (nothing is reported then)."""
    rows = session.execute(
        update(Notification)
        .where(with_ids([notification_id]), unindexed(Notification.status) == Status.SENDING)
        .values(status=status, reason=reason, updated_at=utcnow(), **extra)
        .returning(*_REPORTED)
        .execution_options(synchronize_session=False)
    ).all()
    _report(session, rows, *reported)
    return bool(rows)


def sent_to(session: Session, notification_id: str, email_hash: str) -> bool:
    """Whether the notification went to the address whose keyed hash is ``email_hash``."""
    return (
        session.scalar(
            select(Recipient.email_hash)
            .join(Notification, Notification.recipient_id == Recipient.id)
            .where(with_ids([notification_id]))
        )
        == email_hash
    )


def campaign_of(session: Session, notification_id: str | None) -> int | None:
    """The campaign a notification belongs to, if any (None for an unknown id)."""
    if notification_id is None:
        return None
    return session.scalar(select(Notification.campaign_id).where(with_ids([notification_id])))


def report_feedback(session: Session, notification_id: str, kind: EventType) -> bool:
    """A bounce or complaint that came back later for a notification: ``kind``
    (``notification.bounced`` or ``.complained``) for its key's endpoints. False for an unknown
    id (nothing is reported)."""
    rows = session.execute(select(*_REPORTED).where(with_ids([notification_id]))).all()
    _report(session, rows, kind)
    return bool(rows)


def mark_sent(session: Session, notification_id: str) -> bool:
    return _finish(session, notification_id, Status.SENT, None, EventType.SENT, sent_at=utcnow())


def mark_sent_many(session: Session, sent_at: Mapping[str, datetime]) -> int:
    """:func:`mark_sent` for many rows in one statement, each with the time the relay accepted
    it (``{notification_id: sent_at}``); how many were still ours."""
    if not sent_at:
        return 0
    rows = session.execute(
        update(Notification)
        .where(with_ids(list(sent_at)), unindexed(Notification.status) == Status.SENDING)
        .values(
            status=Status.SENT,
            reason=None,
            updated_at=utcnow(),
            sent_at=case(dict(sent_at), value=Notification.id),
        )
        .returning(*_REPORTED)
        .execution_options(synchronize_session=False)
    ).all()
    _report(session, rows, EventType.SENT)
    return len(rows)


def release(
    session: Session,
    notification_ids: Sequence[str],
    *,
    only_if: Any | None = None,
    due: datetime | None = None,
) -> int:
    """Give claimed rows back unsent (``sending → queued``, the attempt not counted), due now
    (a group that stopped before reaching them) or at ``due`` (held back by quiet hours: the
    sweeper publishes a transactional row ``NOTIFY_SWEEP_QUEUED_AFTER_SECONDS`` after it is
    due, a campaign's batch is due again at its earliest row). ``only_if`` adds a condition
    (a campaign batch's lease). How many were still ours."""
    if not notification_ids:
        return 0
    now = utcnow()
    conditions = [
        with_ids(list(notification_ids)),
        unindexed(Notification.status) == Status.SENDING,
    ]
    if only_if is not None:
        conditions.append(only_if)
    result = session.execute(
        update(Notification)
        .where(*conditions)
        .values(
            status=Status.QUEUED,
            attempts=Notification.attempts - 1,
            next_attempt_at=due or now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def release_until(
    session: Session, due: Mapping[str, datetime], *, only_if: Any | None = None
) -> int:
    """:func:`release` of claimed rows each due at its own time (held by quiet hours): one
    statement per distinct time, so people who share a window share a statement."""
    by_time: dict[datetime, list[str]] = {}
    for notification_id, at in due.items():
        by_time.setdefault(at, []).append(notification_id)
    return sum(release(session, ids, only_if=only_if, due=at) for at, ids in by_time.items())


def mark_failed(
    session: Session, notification_id: str, reason: str, *, bounced: bool = False
) -> bool:
    """``failed`` with ``reason``; ``bounced`` when the relay said the address does not exist
    (reported as ``notification.bounced`` too)."""
    reported = (EventType.FAILED, EventType.BOUNCED) if bounced else (EventType.FAILED,)
    return _finish(session, notification_id, Status.FAILED, reason, *reported)


def mark_suppressed(session: Session, notification_id: str, reason: str) -> bool:
    return _finish(session, notification_id, Status.SUPPRESSED, reason, EventType.SUPPRESSED)


def suppress_unsent(session: Session, notification_id: str, reason: str) -> bool:
    """A row nobody is sending (``queued``, or ``sending`` left by a holder that lost its lease)
    that may not go out: ``suppressed`` with ``reason``; False if it had ended already."""
    rows = session.execute(
        update(Notification)
        .where(
            with_ids([notification_id]),
            unindexed(Notification.status).in_(Status.in_flight()),
        )
        .values(status=Status.SUPPRESSED, reason=reason, updated_at=utcnow())
        .returning(*_REPORTED)
        .execution_options(synchronize_session=False)
    ).all()
    _report(session, rows, EventType.SUPPRESSED)
    return bool(rows)


def suppress_queued_of(session: Session, recipient_id: int, reason: str) -> int:
    """Every queued notification of a person ``suppressed`` with ``reason`` (an erasure), each
    reported to its key's endpoints; how many."""
    rows = session.execute(
        update(Notification)
        .where(Notification.recipient_id == recipient_id, Notification.status == Status.QUEUED)
        .values(status=Status.SUPPRESSED, reason=reason, updated_at=utcnow())
        .returning(*_REPORTED)
        .execution_options(synchronize_session=False)
    ).all()
    _report(session, rows, EventType.SUPPRESSED)
    return len(rows)


def schedule_retry(session: Session, notification_id: str, reason: str, delay: float) -> bool:
    """Back to ``queued`` with the time of the next attempt; the sweeper honours that time."""
    next_at = utcnow() + timedelta(seconds=delay)
    return _finish(session, notification_id, Status.QUEUED, reason, next_attempt_at=next_at)


@dataclass(frozen=True)
class Stuck:
    id: str
    category: str


@dataclass(frozen=True)
class SweptPage:
    """One page of the sweep: the rows to publish again, and how many rows it looked at (some
    may have been failed instead, having used their attempts)."""

    requeue: list[Stuck]
    examined: int


def sweep_stuck(
    session: Session,
    *,
    queued_for: timedelta,
    sending_for: timedelta,
    max_attempts: int,
    limit: int = 500,
    now: datetime | None = None,
) -> SweptPage:
    """Find work the broker lost; return what to enqueue again.

    * ``sending`` for longer than ``sending_for`` (a worker died mid-send): back to ``queued``,
      or ``failed`` once it has used ``max_attempts``.
    * ``queued`` and due for longer than ``queued_for`` (a lost or never-published message):
      enqueue again, and move its due time to now so the next sweep leaves it a while.

    Only transactional rows: a campaign's rows are recovered through their batch's lease.
    Rows are locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two sweepers do not
    return the same rows; a duplicate enqueue is harmless anyway (the claim guards it).
    """
    now = now or utcnow()
    stale_sending = Notification.status == Status.SENDING
    stale_sending = and_(stale_sending, Notification.claimed_at < now - sending_for)
    stale_queued = and_(
        Notification.status == Status.QUEUED, Notification.next_attempt_at < now - queued_for
    )
    rows = session.execute(
        select(Notification.id, Notification.category, Notification.status, Notification.attempts)
        .where(Notification.campaign_id.is_(None), or_(stale_sending, stale_queued))
        .order_by(Notification.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    back = []
    for row in rows:
        if row.status == Status.SENDING and row.attempts >= max_attempts:
            mark_failed(session, row.id, f"worker lost during attempt {row.attempts}; gave up")
        else:
            back.append(row)
    if not back:
        return SweptPage(requeue=[], examined=len(rows))
    # One statement for the page; each row only if its status is still the one read.
    taken = set(
        session.scalars(
            update(Notification)
            .where(
                with_ids([row.id for row in back]),
                tuple_(Notification.id, unindexed(Notification.status)).in_(
                    [(row.id, Status(row.status).value) for row in back]
                ),
            )
            .values(status=Status.QUEUED, next_attempt_at=now, updated_at=now)
            .returning(Notification.id)
            .execution_options(synchronize_session=False)
        )
    )
    requeue = [Stuck(id=row.id, category=row.category) for row in back if row.id in taken]
    return SweptPage(requeue=requeue, examined=len(rows))
