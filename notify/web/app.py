"""The FastAPI application: built by :func:`create_app` from settings, at process start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from notify.celery_app import create_celery
from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.web.errors import install_error_handlers
from notify.web.routes import (
    campaigns,
    health,
    imports,
    mailbox,
    notifications,
    preference_pages,
    preferences_api,
    privacy_api,
    suppressions,
    templates,
    unsubscribe,
    users,
)
from notify.web.state import WebState

WEB_THREADS = 20  # threads for sync endpoints; the database pool has as many connections


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = WEB_THREADS
    yield


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="notify",
        version="0.1.0",
        description=(
            "Sends essential notices always, and product updates only to people who want them."
        ),
    )
    engine = open_database(settings)
    app.state.notify = WebState(
        settings=settings,
        sessions=make_session_factory(engine),
        celery=create_celery(settings),
    )
    install_error_handlers(app)
    routers = (
        health.router,
        notifications.router,
        imports.router,
        users.router,
        preferences_api.router,
        privacy_api.router,
        suppressions.router,
        templates.router,
        campaigns.router,
        unsubscribe.router,
        preference_pages.router,
    )
    for router in routers:
        app.include_router(router)
    if settings.smtp.is_mailbox and settings.env == "development":
        app.include_router(mailbox.router)
    return app


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory notify.web.app:app_from_environment``."""
    from notify.config import load_settings_or_exit

    return create_app(load_settings_or_exit())
