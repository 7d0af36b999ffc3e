"""``/healthz``: is the database answering, and the broker?"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from notify.web.errors import RETRY_AFTER_SECONDS
from notify.web.responses import ERRORS
from notify.web.state import WebState, web_state

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)
Part = Literal["database", "broker"]


class ChecksOut(BaseModel):
    database: bool
    broker: bool


class HealthyOut(BaseModel):
    status: Literal["ok"]
    checks: ChecksOut


class UnhealthyOut(BaseModel):
    status: Literal["unavailable"]
    checks: ChecksOut
    down: list[Part]
    detail: str


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


@router.get(
    "/healthz",
    response_model=HealthyOut,
    responses={
        413: ERRORS[413],
        503: {
            "model": UnhealthyOut,
            "description": "The database or the broker does not answer.",
            "headers": ERRORS[503]["headers"],
        },
    },
)
def healthz(request: Request) -> JSONResponse:
    """200 ``{"status": "ok", "checks": {"database": true, "broker": true}}`` when both answer;
    otherwise 503 with ``Retry-After``, ``"down"`` listing what does not answer and ``"detail"``
    saying it in words."""
    state = web_state(request)
    checks = {"database": _database_ok(state), "broker": _broker_ok(state)}
    down = [part for part, ok in checks.items() if not ok]
    if not down:
        return JSONResponse(status_code=200, content={"status": "ok", "checks": checks})
    body = {
        "status": "unavailable",
        "checks": checks,
        "down": down,
        "detail": f"not answering: {' and '.join(f'the {part}' for part in down)}",
    }
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse(status_code=503, content=body, headers=headers)
