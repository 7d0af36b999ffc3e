"""The delivery baseline: one Celery task per email, the obvious way.

Each task renders the ``security_alert`` files with a plain Jinja2 environment, builds an
``email.message.EmailMessage``, opens a new ``smtplib.SMTP`` connection, sends, quits, and
counts itself in Redis (``INCR`` plus the time, in one round trip). No database.

    celery -A bench.naive_worker worker --pool prefork --concurrency 2 -Q naive

``naive_send_update`` (``bench.naive_send_update``) is the same for a ``product_update`` email with
its own signed unsubscribe link and List-Unsubscribe headers: the baseline of ``bench.campaign``.

Configured from ``BENCH_NAIVE_BROKER_URL`` (Redis), ``BENCH_NAIVE_SMTP`` (``host:port``) and
``BENCH_NAIVE_REDIS_URL`` (where the counter lives). The Celery settings that change throughput
are the ones notify uses: late acks, prefetch 1, JSON, no results.
"""

from __future__ import annotations

import os
import smtplib
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import jinja2
import redis
from celery import Celery
from itsdangerous import URLSafeSerializer

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "emails"
BROKER_URL = os.environ.get("BENCH_NAIVE_BROKER_URL", "redis://127.0.0.1:6379/12")
REDIS_URL = os.environ.get("BENCH_NAIVE_REDIS_URL", BROKER_URL)
SMTP_HOST, _, SMTP_PORT = os.environ.get("BENCH_NAIVE_SMTP", "127.0.0.1:25").rpartition(":")
QUEUE = "naive"
TASK = "bench.naive_send"
UPDATE_TASK = "bench.naive_send_update"  # the campaign baseline of bench/campaign.py
COUNTER_KEY = "bench:naive:sent"
TIMES_KEY = "bench:naive:times"
SENDER = "Security <security@notify.localhost>"

# What notify's layout gets for a security alert (values as in its default configuration).
LAYOUT: dict[str, Any] = {
    "company_name": "Example Ltd",
    "postal_address": "1 Example Street, Example Town, EX1 1EX",
    "category_label": "Security alerts",
    "essential": True,
    "why_always_on": "Security alerts protect your account, so they cannot be turned off.",
    "preferences_url": "http://127.0.0.1:8000/preferences/baseline",
    "unsubscribe_url": None,
    "locale": "en",
}
DETAILS = {"occurred_at": "27 November 2026, 09:14 UTC", "location": "Firefox on Linux"}

app = Celery("naive", broker=BROKER_URL)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=jinja2.select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],  # the templates mark their text for translation
)
# English as written (no catalogue), and the template's date filter showing the text as given
# (DETAILS holds it already written out): the least a plain environment needs to render them.
_environment.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
_environment.filters["format_datetime"] = str
_client: tuple[int, redis.Redis] | None = None


def _redis() -> redis.Redis:
    """One client per process (made again after the prefork pool forks)."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(REDIS_URL))
    return _client[1]


@app.task(name=TASK)
def naive_send(to_address: str, first_name: str, event: str) -> None:
    context: dict[str, Any] = {**DETAILS, "first_name": first_name, "event": event}
    subject = _environment.get_template("security_alert/subject.txt").render(context).strip()
    context["notify"] = {**LAYOUT, "subject": subject}
    text = _environment.get_template("security_alert/body.txt").render(context)
    html = _environment.get_template("security_alert/body.html").render(context)

    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = to_address
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="notify.localhost")
    message.set_content(text)
    message.add_alternative(html, subtype="html")

    with smtplib.SMTP(SMTP_HOST, int(SMTP_PORT), timeout=30) as connection:
        connection.send_message(message)

    pipe = _redis().pipeline(transaction=False)
    pipe.incr(COUNTER_KEY)
    pipe.rpush(TIMES_KEY, repr(time.time()))
    pipe.execute()


# --- the campaign baseline (bench/campaign.py): a product update with its unsubscribe link --

UPDATE_SENDER = "Product news <news@notify.localhost>"
SECRET_KEY = os.environ.get("BENCH_NAIVE_SECRET_KEY", "bench-only-secret")
PUBLIC_URL = "http://127.0.0.1:8000"
UPDATE_LAYOUT: dict[str, Any] = {
    **LAYOUT,
    "category_label": "Product updates",
    "essential": False,
    "why_always_on": "",
}


@app.task(name=UPDATE_TASK)
def naive_send_update(to_address: str, public_id: str, data: dict[str, Any]) -> None:
    """One ``product_update`` email: sign its unsubscribe link, render, build, new connection."""
    token = URLSafeSerializer(SECRET_KEY, salt="notify.unsubscribe.v1").dumps(
        [public_id, "product_updates"]
    )
    unsubscribe_url = f"{PUBLIC_URL}/u/{token}"
    context: dict[str, Any] = dict(data)
    # The template greets the person by their own first name (recipient.first_name).
    context["recipient"] = {"first_name": data.get("first_name")}
    subject = _environment.get_template("product_update/subject.txt").render(context).strip()
    context["notify"] = {**UPDATE_LAYOUT, "subject": subject, "unsubscribe_url": unsubscribe_url}
    text = _environment.get_template("product_update/body.txt").render(context)
    html = _environment.get_template("product_update/body.html").render(context)

    message = EmailMessage()
    message["From"] = UPDATE_SENDER
    message["To"] = to_address
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="notify.localhost")
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text)
    message.add_alternative(html, subtype="html")

    with smtplib.SMTP(SMTP_HOST, int(SMTP_PORT), timeout=30) as connection:
        connection.send_message(message)

    pipe = _redis().pipeline(transaction=False)
    pipe.incr(COUNTER_KEY)
    pipe.rpush(TIMES_KEY, repr(time.time()))
    pipe.execute()
