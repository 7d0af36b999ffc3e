"""Console sign-in: the session cookie, CSRF tokens and the sign-in throttle.

The session cookie is signed with ``NOTIFY_SECRET_KEYS`` (itsdangerous, a salt of its own) and
holds the operator's id, their ``session_epoch`` and a random nonce; it is HttpOnly,
SameSite=Lax, Secure outside development, and expires ``NOTIFY_CONSOLE_SESSION_SECONDS`` after
sign-in. Every form carries a CSRF token: the nonce of the session (or, before sign-in, of a
short-lived cookie of its own) signed with another salt, so a form posted from another site,
or from another session, is refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.models import Operator, OperatorRole

SESSION_COOKIE = "notify_console"
PRE_SESSION_COOKIE = "notify_console_form"  # the nonce of the sign-in and setup forms
PRE_SESSION_SECONDS = 3600
SESSION_SALT = "notify.console.session.v1"
CSRF_SALT = "notify.console.csrf.v1"
PRE_SESSION_SALT = "notify.console.form.v1"
COOKIE_PATH = "/console"


@dataclass(frozen=True)
class SignedIn:
    operator: Operator
    nonce: str

    @property
    def is_admin(self) -> bool:
        return self.operator.role == OperatorRole.ADMIN


def _cookie_options(settings: Settings) -> dict[str, object]:
    return {
        "httponly": True,
        "samesite": "lax",
        "secure": settings.env != "development",
        "path": COOKIE_PATH,
    }


def start(response: Response, settings: Settings, operator: Operator) -> None:
    """Sign ``operator`` in on ``response``'s browser."""
    value = URLSafeTimedSerializer(settings.secret_key_list, salt=SESSION_SALT).dumps(
        [operator.id, operator.session_epoch, secrets.token_urlsafe(16)]
    )
    response.set_cookie(
        SESSION_COOKIE,
        str(value),
        max_age=settings.console_session_seconds,
        **_cookie_options(settings),  # type: ignore[arg-type]
    )


def end(response: Response, settings: Settings) -> None:
    response.delete_cookie(SESSION_COOKIE, **_cookie_options(settings))  # type: ignore[arg-type]


def signed_in(request: Request, session: Session, settings: Settings) -> SignedIn | None:
    """The operator this request comes from, if its cookie is genuine, unexpired and still
    theirs (not disabled, not signed out since)."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        operator_id, epoch, nonce = URLSafeTimedSerializer(
            settings.secret_key_list, salt=SESSION_SALT
        ).loads(raw, max_age=settings.console_session_seconds)
    except (BadData, ValueError, TypeError):
        return None
    operator = session.get(Operator, operator_id) if isinstance(operator_id, int) else None
    if operator is None or operator.disabled_at is not None or operator.session_epoch != epoch:
        return None
    return SignedIn(operator, str(nonce))


def form_nonce(request: Request, response: Response, settings: Settings) -> str:
    """The nonce a sign-in or setup form's CSRF token is made from (a cookie of its own)."""
    signer = URLSafeTimedSerializer(settings.secret_key_list, salt=PRE_SESSION_SALT)
    raw = request.cookies.get(PRE_SESSION_COOKIE)
    if raw:
        try:
            return str(signer.loads(raw, max_age=PRE_SESSION_SECONDS))
        except BadData:
            pass
    nonce = secrets.token_urlsafe(16)
    response.set_cookie(
        PRE_SESSION_COOKIE,
        str(signer.dumps(nonce)),
        max_age=PRE_SESSION_SECONDS,
        **_cookie_options(settings),  # type: ignore[arg-type]
    )
    return nonce


def posted_form_nonce(request: Request, settings: Settings) -> str | None:
    raw = request.cookies.get(PRE_SESSION_COOKIE)
    if not raw:
        return None
    try:
        signer = URLSafeTimedSerializer(settings.secret_key_list, salt=PRE_SESSION_SALT)
        return str(signer.loads(raw, max_age=PRE_SESSION_SECONDS))
    except BadData:
        return None


def csrf_token(settings: Settings, nonce: str) -> str:
    return str(URLSafeSerializer(settings.secret_key_list, salt=CSRF_SALT).dumps(nonce))


def csrf_ok(settings: Settings, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token:
        return False
    try:
        signed = URLSafeSerializer(settings.secret_key_list, salt=CSRF_SALT).loads(token)
    except BadData:
        return False
    return secrets.compare_digest(str(signed), nonce)


class SignInThrottle:
    """At most ``per_minute`` sign-in attempts per address, and ten times that per client
    address, in a moving window shared by every web process when there is Redis."""

    def __init__(self, settings: Settings) -> None:
        self._storage = settings.rate_limit_storage
        self._limiter: MovingWindowRateLimiter | None = None  # made on first use: no connection
        self._per_address = RateLimitItemPerMinute(settings.console_login_attempts_per_minute)
        self._per_client = RateLimitItemPerMinute(settings.console_login_attempts_per_minute * 10)

    def allow(self, address: str, client: str) -> bool:
        """Count one attempt; False if either window is already full."""
        if self._limiter is None:
            self._limiter = MovingWindowRateLimiter(storage_from_string(self._storage))
        return self._limiter.hit(self._per_client, "console-client", client) and (
            self._limiter.hit(self._per_address, "console-address", address.lower())
        )
