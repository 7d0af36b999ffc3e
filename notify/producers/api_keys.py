"""API keys: made once, shown once, stored as a SHA-256 of the secret. Callers commit."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.models import ApiKey
from notify.models.base import utcnow

KEY_PREFIX = "nfy_"
MAX_CACHED_KEYS = 10_000
SCOPES = frozenset(
    {
        "notifications:send",
        "users:read",
        "users:write",
        "preferences:read",
        "preferences:write",
        "campaigns:read",
        "campaigns:write",
        "privacy",
        "callbacks",
    }
)


class UnknownScopeError(ValueError):
    """A scope that is not in SCOPES, or none at all; the message lists every valid scope."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id, name and scopes (never the secret)."""

    key_id: int
    name: str
    scopes: frozenset[str]


def hash_secret(secret: str) -> str:
    # A 256-bit random secret needs no slow hash: SHA-256 makes a stolen table useless.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(session: Session, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
    """Store a new key; returns the row and the secret, which is not stored anywhere.

    Raises UnknownScopeError, whose message names the unknown scopes and lists the valid ones,
    for a scope not in SCOPES or for no scope at all."""
    wanted = sorted(set(scopes))
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown or not wanted:
        problem = (
            f"unknown scope {', '.join(unknown)}" if unknown else "at least one scope is needed"
        )
        raise UnknownScopeError(f"{problem}; the scopes are {', '.join(sorted(SCOPES))}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, secret_hash=hash_secret(secret), scopes=" ".join(wanted))
    session.add(key)
    session.flush()
    return key, secret


class CallerCache:
    """Keys that authenticated in the last ``seconds``, by the hash of their secret, so most
    requests skip the database lookup. Guarantee: a key revoked in any process is refused by
    this one at most ``seconds`` later (``NOTIFY_API_KEY_CACHE_SECONDS``; 0 keeps nothing, so
    a revocation is honoured at once). Unknown keys are never cached. Thread-safe.
    """

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._found: dict[str, tuple[Caller, float]] = {}
        self._lock = threading.Lock()

    def get(self, secret: str) -> Caller | None:
        """The cached caller for ``secret``, if it authenticated less than ``seconds`` ago."""
        if self.seconds <= 0:
            return None
        digest = hash_secret(secret)
        with self._lock:
            found = self._found.get(digest)
            if found is None:
                return None
            caller, until = found
            if self._clock() >= until:
                del self._found[digest]
                return None
            return caller

    def put(self, secret: str, caller: Caller) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._found) >= MAX_CACHED_KEYS:
                self._found.clear()  # a bounded memory, whatever is presented
            self._found[hash_secret(secret)] = (caller, self._clock() + self.seconds)


def authenticate(session: Session, secret: str) -> Caller | None:
    """The caller for a presented secret, or None if unknown or revoked."""
    if not secret.startswith(KEY_PREFIX):
        return None
    row = session.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.scopes).where(
            ApiKey.secret_hash == hash_secret(secret), ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Caller(key_id=row.id, name=row.name, scopes=frozenset(row.scopes.split()))


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke(session: Session, key_id: int) -> bool:
    """Revoke a key: refused at once by a new lookup, and by every web process within
    ``NOTIFY_API_KEY_CACHE_SECONDS`` (see :class:`CallerCache`). False if there is no such key
    or it was revoked already."""
    key = session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None:
        return False
    key.revoked_at = utcnow()
    return True
