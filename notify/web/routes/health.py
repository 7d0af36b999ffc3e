"""``/healthz``: is this process alive? ``/readyz``: can it serve: the database and the broker
answer, and the schema is at the migrations' head?

Orchestrators restart on the first and route traffic on the second: a database outage makes
the web unready (503 with ``Retry-After``), never dead."""

from __future__ import annotations

import logging
from functools import cache
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from notify.web.errors import RETRY_AFTER_SECONDS
from notify.web.responses import ERRORS
from notify.web.state import WebState, web_state

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)
Part = Literal["database", "broker", "migrations"]


class AliveOut(BaseModel):
    status: Literal["ok"]


class ChecksOut(BaseModel):
    database: bool
    broker: bool
    migrations: bool


class HealthyOut(BaseModel):
    status: Literal["ok"]
    checks: ChecksOut


class UnhealthyOut(BaseModel):
    status: Literal["unavailable"]
    checks: ChecksOut
    down: list[Part]
    detail: str


def _database_at(state: WebState) -> str | None:
    """The schema's migration revision ("" when it has none), or None if the database does not
    answer."""
    try:
        with state.sessions() as session:
            session.execute(text("SELECT 1"))
            try:
                with session.begin_nested():
                    found = session.execute(
                        text("SELECT version_num FROM alembic_version")
                    ).scalar()
            except DBAPIError:  # no alembic_version table: never migrated
                found = None
    except Exception as error:  # any failure means unready; say which
        log.warning("health: database check failed: %s", type(error).__name__)
        return None
    return str(found or "")


@cache
def _known_revisions() -> tuple[str, frozenset[str]]:
    """This code's newest migration and every revision it knows (read once a process)."""
    from alembic.script import ScriptDirectory

    from notify.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = frozenset(revision.revision for revision in scripts.walk_revisions())
    return str(scripts.get_current_head()), known


def schema_ready(revision: str) -> bool:
    """True when the schema is at this code's head, or ahead of it: a revision this code does
    not know was written by a newer release's migrations, which are additive, so the instances
    still running the old code stay in service during a rolling deploy. A schema behind the
    head (or never migrated) is not ready."""
    head, known = _known_revisions()
    return revision == head or (bool(revision) and revision not in known)


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


@router.get("/healthz", response_model=AliveOut, responses={413: ERRORS[413]})
def healthz() -> AliveOut:
    """200 ``{"status": "ok"}`` while the process can answer at all; touches nothing else
    (``/readyz`` checks what it depends on)."""
    return AliveOut(status="ok")


@router.get(
    "/readyz",
    response_model=HealthyOut,
    responses={
        413: ERRORS[413],
        503: {
            "model": UnhealthyOut,
            "description": "The database or the broker does not answer, or the schema is not "
            "at the migrations' head.",
            "headers": ERRORS[503]["headers"],
        },
    },
)
def readyz(request: Request) -> JSONResponse:
    """200 ``{"status": "ok", "checks": {"database": true, "broker": true, "migrations":
    true}}`` when all hold (the schema at this code's head or newer); otherwise 503 with
    ``Retry-After``, ``"down"`` listing what does not and ``"detail"`` saying it in words."""
    state = web_state(request)
    database = _database_at(state)
    checks = {
        "database": database is not None,
        "broker": _broker_ok(state),
        "migrations": database is not None and schema_ready(database),
    }
    # While the database does not answer, its schema is unknown: say the database is down,
    # not that it needs migrating.
    down = [
        part
        for part, ok in checks.items()
        if not ok and not (part == "migrations" and database is None)
    ]
    if not down:
        return JSONResponse(status_code=200, content={"status": "ok", "checks": checks})
    body = {
        "status": "unavailable",
        "checks": checks,
        "down": down,
        "detail": f"not ready: {' and '.join(_WORDS[part] for part in down)}",
    }
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse(status_code=503, content=body, headers=headers)


_WORDS = {
    "database": "the database does not answer",
    "broker": "the broker does not answer",
    "migrations": "the schema is not at the migrations' head (run notify db upgrade)",
}
