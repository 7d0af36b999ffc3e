"""Operators of the console: created with a one-time setup link, signed in with a password.

Passwords are hashed with Argon2id (argon2-cffi, its default parameters); a setup token is
random, shown once, stored as a SHA-256 and spent by its first use. An operator who is
disabled, or whose sessions were ended, is refused at once: every session cookie carries the
operator's ``session_epoch``. Callers own the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.message.validation import normalised_email
from notify.models import Operator, OperatorRole
from notify.models.base import utcnow

SETUP_LINK_LIFETIME = timedelta(hours=24)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # Argon2 takes any length; this bounds the work one request costs
_HASHER = PasswordHasher()
# Verified when no operator has the address, so an unknown address costs what a known one does.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class OperatorError(ValueError):
    """A readable reason an operator could not be created, set up or signed in."""


@dataclass(frozen=True)
class SetupLink:
    operator_id: int
    token: str  # shown once; only its hash is stored
    expires_at: datetime


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(session: Session, email: str, role: str, *, now: datetime | None = None) -> SetupLink:
    """A new operator without a password, and the token of their one-time setup link."""
    try:
        address = normalised_email(email)
    except ValueError as error:
        raise OperatorError(f"the address {error}") from None
    if role not in set(OperatorRole):
        known = ", ".join(member.value for member in OperatorRole)
        raise OperatorError(f"the role must be one of {known}")
    chosen = OperatorRole(role)
    if session.scalars(select(Operator.id).where(Operator.email == address)).first():
        raise OperatorError(f"an operator with the address {address} exists already")
    operator = Operator(email=address, role=chosen)
    session.add(operator)
    session.flush()
    return new_setup_link(session, operator, now=now)


def new_setup_link(
    session: Session, operator: Operator, *, now: datetime | None = None
) -> SetupLink:
    """A fresh setup link for ``operator`` (a forgotten password); an older link stops working."""
    token = secrets.token_urlsafe(32)
    expires_at = (now or utcnow()) + SETUP_LINK_LIFETIME
    operator.setup_token_hash = _token_hash(token)
    operator.setup_expires_at = expires_at
    session.flush()
    return SetupLink(operator.id, token, expires_at)


def by_setup_token(session: Session, token: str, *, now: datetime | None = None) -> Operator | None:
    """The operator whose setup link this is, if it is unused, unexpired and they are enabled."""
    operator = session.scalars(
        select(Operator).where(Operator.setup_token_hash == _token_hash(token))
    ).first()
    if operator is None or operator.disabled_at is not None:
        return None
    if operator.setup_expires_at is None or operator.setup_expires_at <= (now or utcnow()):
        return None
    return operator


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


def set_password(session: Session, operator: Operator, password: str) -> None:
    """Set the password, spend the setup link and end every other session of the operator."""
    problem = password_problem(password)
    if problem is not None:
        raise OperatorError(f"the password {problem}")
    operator.password_hash = _HASHER.hash(password)
    operator.setup_token_hash = None
    operator.setup_expires_at = None
    operator.session_epoch += 1
    session.flush()


def authenticate(session: Session, email: str, password: str) -> Operator | None:
    """The enabled operator with this address and password, or None (one answer for every
    reason, in about the same time)."""
    try:
        address = normalised_email(email)
    except ValueError:
        address = None
    operator = (
        session.scalars(select(Operator).where(Operator.email == address)).first()
        if address
        else None
    )
    stored = operator.password_hash if operator is not None else None
    try:
        _HASHER.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return None
    if operator is None or stored is None or operator.disabled_at is not None:
        return None
    if _HASHER.check_needs_rehash(stored):
        operator.password_hash = _HASHER.hash(password)
    operator.last_login_at = utcnow()
    session.flush()
    return operator


def end_sessions(session: Session, operator: Operator) -> None:
    """Sign the operator out everywhere."""
    operator.session_epoch += 1
    session.flush()


def find(session: Session, email: str) -> Operator | None:
    """The operator with this address (in its normal form), or None."""
    try:
        address = normalised_email(email)
    except ValueError:
        return None
    return session.scalars(select(Operator).where(Operator.email == address)).first()


def disable(session: Session, operator: Operator) -> None:
    """Refuse the operator from now on: every session ends and no setup link works."""
    operator.disabled_at = utcnow()
    operator.setup_token_hash = None
    operator.setup_expires_at = None
    end_sessions(session, operator)
