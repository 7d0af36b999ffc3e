"""``POST /inbound/ses``: Amazon SES bounce and complaint notifications, delivered by Amazon SNS.

Outside ``/v1``: SNS cannot send an API key. It is trusted by the message's own signature and
by its topic, which must be one of ``NOTIFY_SES_TOPIC_ARNS`` (empty: the route answers 404).
A subscription confirmation is confirmed by fetching its ``SubscribeURL`` (https on an SNS
host). Relays other than SES report through ``POST /v1/suppressions/reports``.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from notify.inbound import sns
from notify.inbound.handling import apply_ses
from notify.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024


def _certificates(state: WebState) -> Any:
    @cache
    def fetch(url: str) -> bytes:
        return state.https_get(url)

    return fetch


@router.post("/inbound/ses")
async def ses(request: Request) -> Response:
    state = web_state(request)
    topics = {arn.strip() for arn in state.settings.ses_topic_arns.split(",") if arn.strip()}
    if not topics:
        raise HTTPException(404, "Not Found")
    body = await request.body()
    try:
        message = json.loads(body[:MAX_BODY])
    except ValueError:
        raise HTTPException(400, "not an SNS message (JSON)") from None
    if not isinstance(message, dict):
        raise HTTPException(400, "not an SNS message")
    topic = message.get("TopicArn")
    if not isinstance(topic, str) or topic not in topics:
        raise HTTPException(403, "not a topic this service accepts")
    fetch = getattr(request.app.state, "sns_certificates", None)
    if fetch is None:
        fetch = request.app.state.sns_certificates = _certificates(state)
    try:
        await run_in_threadpool(sns.verify, message, fetch)
    except sns.SnsError as error:
        log.warning("refused an SNS message: %s", error)
        raise HTTPException(403, f"not a genuine SNS message: {error}") from None
    except Exception as error:  # the certificate could not be fetched: SNS tries again
        log.warning("could not fetch an SNS certificate: %s", type(error).__name__)
        raise HTTPException(503, "cannot check the signature now", {"Retry-After": "30"}) from None
    kind = message.get("Type")
    if kind == sns.SUBSCRIPTION_CONFIRMATION:
        try:
            url = sns.amazon_url(str(message.get("SubscribeURL", "")))
        except sns.SnsError as error:
            raise HTTPException(400, f"not a subscription to confirm: {error}") from None
        try:
            await run_in_threadpool(state.https_get, url)
        except Exception as error:  # SNS sends the confirmation again
            log.warning("could not confirm an SNS subscription: %s", type(error).__name__)
            raise HTTPException(503, "cannot confirm now", {"Retry-After": "30"}) from None
        return Response(status_code=200)
    if kind != sns.NOTIFICATION:
        return Response(status_code=200)
    try:
        event = sns.ses_event(str(message.get("Message", "")))
    except sns.SnsError as error:
        raise HTTPException(400, f"not an SES notification: {error}") from None
    await run_in_threadpool(apply_ses, state.sessions, state.settings, event)
    return Response(status_code=200)
