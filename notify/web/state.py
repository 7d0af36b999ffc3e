"""What the web process holds for its lifetime, reachable from any request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
from celery import Celery
from fastapi import Request
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.db import SessionFactory
from notify.delivery.publisher import GroupPublisher
from notify.web.console.sessions import SignInThrottle


@dataclass(frozen=True)
class WebState:
    settings: Settings
    sessions: SessionFactory
    celery: Celery
    publisher: GroupPublisher  # send tasks for committed notifications, off the request path
    console_throttle: SignInThrottle  # console sign-in attempts
    # An https GET (SNS signing certificates, subscription confirmations): bytes, or raises
    https_get: Callable[[str], bytes] = field(default_factory=lambda: https_get)


def https_get(url: str) -> bytes:
    """GET ``url`` without following redirects, in at most five seconds; raises on failure."""
    response = httpx.get(url, timeout=5.0, follow_redirects=False)
    response.raise_for_status()
    return response.content


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.notify
    return state


def db_session(request: Request) -> Iterator[Session]:
    """One session per request, shared by the auth check and the handler (FastAPI caches the
    dependency per request); handlers that write commit explicitly, the rest is rolled back."""
    with web_state(request).sessions() as session:
        yield session
