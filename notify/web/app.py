"""The FastAPI application: built by :func:`create_app` from settings, at process start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio.to_thread
from fastapi import FastAPI

from notify.celery_app import create_celery
from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.delivery.enqueue import enqueue_sends
from notify.delivery.publisher import GroupPublisher
from notify.producers.api_keys import CallerCache
from notify.web import openapi
from notify.web.auth import AuthenticateFirst
from notify.web.body_limit import BodyLimit
from notify.web.console import audience as console_audience
from notify.web.console import authoring as console_authoring
from notify.web.console import people as console_people
from notify.web.console import routes as console
from notify.web.console import stats as console_stats
from notify.web.console.sessions import SignInThrottle
from notify.web.errors import install_error_handlers
from notify.web.observe import Observe
from notify.web.routes import (
    callbacks,
    campaigns,
    explain,
    health,
    imports,
    mailbox,
    metrics,
    notifications,
    preference_pages,
    preferences_api,
    privacy_api,
    provider_events,
    suppressions,
    templates,
    unsubscribe,
    users,
)
from notify.web.state import WebState

WEB_THREADS = 20  # threads for sync endpoints; the database pool has as many connections


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = WEB_THREADS
    yield
    state: WebState = app.state.notify
    await anyio.to_thread.run_sync(state.publisher.close)  # publish what is still waiting


def create_app(settings: Settings) -> FastAPI:
    """The app for ``settings``. Opens no connection: the database and broker are reached on
    the first request that needs them (a PostgreSQL connect attempt gives up after
    ``NOTIFY_DATABASE_CONNECT_TIMEOUT_SECONDS``, and the request is answered 503).

    Middleware, outermost first: the error boundary (503/500, one log line without personal
    data), the body limit (413 while the body streams in), API-key authentication of ``/v1``
    (401 before any body byte is read); then FastAPI's routes. ``/openapi.json`` documents
    every status each operation answers (``notify.web.responses``) and this app's body limits.
    """
    app = FastAPI(
        lifespan=_lifespan,
        title="notify",
        version="0.1.0",
        description=(
            "Sends essential notices always, and product updates only to people who want them."
        ),
    )
    engine = open_database(settings)
    celery = create_celery(settings)
    state = WebState(
        settings=settings,
        sessions=make_session_factory(engine),
        celery=celery,
        publisher=GroupPublisher(
            partial(enqueue_sends, celery, batch_size=settings.send_batch_size),
            batch_size=settings.send_batch_size,
            linger=settings.publish_linger_seconds,
        ),
        console_throttle=SignInThrottle(settings),
    )
    app.state.notify = state
    routers = [
        health.router,
        metrics.router,
        notifications.router,
        explain.router,
        imports.router,
        users.router,
        preferences_api.router,
        privacy_api.router,
        suppressions.router,
        callbacks.router,
        templates.router,
        campaigns.router,
        unsubscribe.router,
        preference_pages.router,
        provider_events.router,
        console_authoring.router,  # before console.router: /campaigns/new is not an id
        console_audience.router,
        console_stats.router,
        console_people.router,
        console.router,
    ]
    if mailbox.pages_on(settings):
        routers.append(mailbox.router)
    for router in routers:
        app.include_router(router)
    # add_middleware puts each new one outside the previous ones.
    app.add_middleware(
        AuthenticateFirst,
        sessions=state.sessions,
        cache=CallerCache(settings.api_key_cache_seconds),
    )
    app.add_middleware(
        BodyLimit, api_bytes=settings.max_body_bytes, bulk_bytes=settings.max_import_bytes
    )
    # the error boundary, then the request id and metrics: outermost, so they see every answer
    install_error_handlers(app, [route for router in routers for route in router.routes])
    app.add_middleware(Observe)
    openapi.install(app, settings)
    return app


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory notify.web.app:app_from_environment``."""
    from notify.config import load_settings_or_exit
    from notify.observability.logs import configure_logging

    settings = load_settings_or_exit()
    configure_logging(settings)
    return create_app(settings)
