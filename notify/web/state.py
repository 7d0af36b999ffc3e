"""What the web process holds for its lifetime, reachable from any request."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from fastapi import Request

from notify.config import Settings
from notify.db import SessionFactory


@dataclass(frozen=True)
class WebState:
    settings: Settings
    sessions: SessionFactory
    celery: Celery


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.notify
    return state
