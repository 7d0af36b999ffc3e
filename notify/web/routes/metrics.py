"""``GET /metrics``: the web's metrics for Prometheus, with the database gauges.

Guarded so metrics are never public by accident: with ``NOTIFY_METRICS_TOKEN`` set, a request
must carry ``Authorization: Bearer <token>`` (compared in constant time); without one, the
route is open in development and answers 404 in production. The answer is the same whichever
uvicorn worker serves it (:mod:`notify.observability.exposition`).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from notify.observability import exposition
from notify.observability.database_gauges import DatabaseGauges
from notify.web.auth import presented_secret
from notify.web.state import web_state

router = APIRouter(tags=["health"])


def _allowed(request: Request) -> bool:
    settings = web_state(request).settings
    if not settings.metrics_token:
        return settings.env == "development"
    given = presented_secret(request.scope)
    return given is not None and hmac.compare_digest(
        given.encode(), settings.metrics_token.encode()
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {exposition.CONTENT_TYPE: {}}, "description": "Prometheus text."},
        404: {"description": "Not served: production without NOTIFY_METRICS_TOKEN, or no token."},
    },
)
async def metrics(request: Request) -> Response:
    """Every metric of the web's processes, and the queue, campaign and callback gauges read
    from the database at this scrape."""
    if not _allowed(request):
        raise HTTPException(404, "Not Found")
    gauges = DatabaseGauges(web_state(request).sessions)
    body = await run_in_threadpool(exposition.exposition, [gauges])
    return Response(body, media_type=exposition.CONTENT_TYPE)
