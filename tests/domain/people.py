"""What the domain tests make again and again: a person, a notification accepted for one
(at ``<user id>@example.com``, with the template's sample data), a callback endpoint."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import Text, select, type_coerce
from sqlalchemy.orm import Session

from notify import crypto
from notify.delivery import outbox
from notify.delivery.outbox import NotificationRequest
from notify.message.templates import get_template
from notify.models import ApiKey, CallbackEndpoint, Notification
from notify.people import recipients
from notify.producers.callbacks.events import EventType

HASH_KEY = "domain-test-hash-key"


def person(session: Session, user_id: str) -> int:
    """A recipient with an address; their id."""
    recipient_id = recipients.upsert_for_send(
        session, user_id, email=f"{user_id}@example.com", hash_key=HASH_KEY
    )
    assert recipient_id is not None
    return recipient_id


def accepted(session: Session, template: str, user_id: str) -> tuple[str, int]:
    """A notification of ``template`` accepted for ``user_id`` (made if new); its id and the
    recipient's."""
    request = NotificationRequest(
        template=template,
        user_id=user_id,
        email=f"{user_id}@example.com",
        data=dict(get_template(template).sample),
    )
    made = outbox.submit(session, None, request, max_data_bytes=16_384, hash_key=HASH_KEY)
    assert made.created
    recipient_id = session.scalar(
        select(Notification.recipient_id).where(Notification.id == made.id)
    )
    assert recipient_id is not None
    return made.id, recipient_id


def endpoint(session: Session, *wanted: EventType) -> tuple[int, int]:
    """A live callback endpoint of a key of its own that asked for ``wanted``: (key, endpoint)."""
    key = ApiKey(name="outbox", secret_hash=f"h-{random.random()}", scopes="callbacks")
    session.add(key)
    session.flush()
    row = CallbackEndpoint(
        api_key_id=key.id, url="https://hooks.example.com", events=[e.value for e in wanted],
        secrets={"secrets": ["whsec_dGVzdA=="]},
    )  # fmt: skip
    session.add(row)
    session.flush()
    return key.id, row.id


def under_another_key(plain: str) -> Any:
    """``plain`` encrypted under a data key this process does not have, as a value to store
    as it is in an encrypted column: what a row looks like after its key was dropped."""
    sealed = crypto.keyring(["a-key-no-process-here-has"]).encrypt(plain.encode()).decode()
    return type_coerce(sealed, Text)
