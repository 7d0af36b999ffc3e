"""``/healthz``: is the database answering, and the broker?"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from notify.web.state import WebState, web_state

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


def _database_ok(state: WebState) -> bool:
    try:
        with state.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as error:  # any failure means unhealthy; say which
        log.warning("health: database check failed: %s", type(error).__name__)
        return False
    return True


def _broker_ok(state: WebState) -> bool:
    try:
        with state.celery.pool.acquire(block=True, timeout=2) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            if state.settings.broker_is_redis:
                connection.default_channel.client.ping()
    except Exception as error:  # any failure means unhealthy; say which
        log.warning("health: broker check failed: %s", type(error).__name__)
        return False
    return True


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    state = web_state(request)
    checks = {"database": _database_ok(state), "broker": _broker_ok(state)}
    healthy = all(checks.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    return JSONResponse(status_code=200 if healthy else 503, content=body)
