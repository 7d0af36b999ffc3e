"""What the web process holds for its lifetime, reachable from any request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.notify
    return state


def db_session(request: Request) -> Iterator[Session]:
    """One session per request, shared by the auth check and the handler (FastAPI caches the
    dependency per request); handlers that write commit explicitly, the rest is rolled back."""
    with web_state(request).sessions() as session:
        yield session
