"""The audit log: who did what to which campaign, import, operator or key, and when.

Entries name things by id (``campaign:12``) and never hold a recipient's address. Written in
the caller's transaction, so an action and its entry are committed together or not at all.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.models import AuditEntry, Operator


def record(
    session: Session,
    action: str,
    target: str | None = None,
    *,
    operator: Operator | None = None,
    actor: str | None = None,
    **details: Any,
) -> None:
    """One entry: by ``operator`` (a console user), or by ``actor`` (``key:billing``, ``cli``)."""
    session.add(
        AuditEntry(
            operator_id=operator.id if operator is not None else None,
            actor=operator.email if operator is not None else (actor or "cli"),
            action=action,
            target=target,
            details=details,
        )
    )


def recent(session: Session, limit: int = 100) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
