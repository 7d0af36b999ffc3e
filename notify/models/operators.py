"""The console's operators (marketing and admins) and the audit log of what they did.

An operator's password is stored only as an Argon2 hash; a setup link's token only as a
SHA-256. The audit log names the operator and the thing acted on (a campaign id, an operator
id), never a recipient's address.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base, enum_column_type, utcnow


class OperatorRole(StrEnum):
    MARKETING = "marketing"  # campaigns, audience imports, stats
    ADMIN = "admin"  # all of that, and operators and API keys


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[OperatorRole] = mapped_column(enum_column_type(OperatorRole, "operator_role"))
    password_hash: Mapped[str | None] = mapped_column(String(200))  # None until set up
    setup_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    setup_expires_at: Mapped[datetime | None]
    # Part of every session cookie: raising it ends every session of this operator.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    actor: Mapped[str] = mapped_column(String(320))  # the operator's address, or "cli"
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str | None] = mapped_column(String(100))  # "campaign:12", "operator:3"
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
