"""Every metric notify exports, in one place, and the few helpers that record them.

Names follow Prometheus conventions (``notify_`` prefix, base units, ``_total`` counters).
No label ever carries an address, a user id, a token or free text: labels are categories,
lanes, outcomes, reply classes, route templates and task names, all from closed sets. Values
are kept per process and, under a multi-process server or pool, added up at scrape time
(:mod:`notify.observability.processes`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from notify.categories import CATEGORIES

# Seconds from a notification's acceptance by the API to the relay's acceptance.
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
SMTP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# --- the web --------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "notify_http_requests",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "notify_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
)

# --- delivery -------------------------------------------------------------------------------
NOTIFICATIONS = Counter(
    "notify_notifications",
    "Transactional and campaign messages by category and how their attempt ended: sent, "
    "suppressed (reason: why), failed, retried.",
    ["category", "outcome", "reason"],
)
DELIVERY_SECONDS = Histogram(
    "notify_delivery_latency_seconds",
    "From a notification's acceptance by the API to the relay's acceptance, by lane.",
    ["lane"],
    buckets=DELIVERY_BUCKETS,
)
SMTP_SECONDS = Histogram(
    "notify_smtp_send_seconds",
    "One message handed to the relay: the SMTP exchange, reconnects included.",
    buckets=SMTP_BUCKETS,
)
SMTP_ERRORS = Counter(
    "notify_smtp_errors",
    "Messages the relay did not accept, by reply class (4xx, 5xx, or connection).",
    ["reply_class"],
)
SWEEPER_REPUBLISHED = Counter(
    "notify_sweeper_republished",
    "Notifications the sweeper published again (lost by the broker or left by a dead worker).",
)
CAMPAIGN_MESSAGES = Counter(
    "notify_campaign_messages",
    "Campaign messages by how their attempt ended: sent, suppressed, failed, retried.",
    ["outcome"],
)
CAMPAIGN_GAVE_WAY_SECONDS = Counter(
    "notify_campaign_gave_way_seconds",
    "Seconds campaign batches waited for essential mail to be taken.",
)

# --- what comes back --------------------------------------------------------------------------
FEEDBACK = Counter(
    "notify_feedback",
    "Bounces and complaints received, by kind (hard_bounce, soft_bounce, complaint).",
    ["kind"],
)
CALLBACK_DELIVERIES = Counter(
    "notify_callback_deliveries",
    "Status callbacks to producers by outcome: delivered, retrying, dead.",
    ["outcome"],
)

# --- workers ----------------------------------------------------------------------------------
TASKS = Counter(
    "notify_tasks",
    "Celery tasks run by this service's workers, by task name and outcome.",
    ["task", "outcome"],
)
TASK_SECONDS = Histogram(
    "notify_task_duration_seconds",
    "Time a Celery task ran, by task name.",
    ["task"],
    buckets=TASK_BUCKETS,
)
WORKER_LANES = Gauge(
    "notify_worker_lanes",
    "1 for each queue a running worker serves (the process serving this endpoint).",
    ["lane"],
    multiprocess_mode="max",
)


def lane_of(category: str) -> str:
    """The category's lane (from the registry, :mod:`notify.categories`), or ``unknown``."""
    registered = CATEGORIES.get(category)
    return registered.lane.value if registered is not None else "unknown"


def known_category(category: str) -> str:
    """The category as a label: a registered name, else ``other`` (labels stay a closed set)."""
    return category if category in CATEGORIES else "other"


def count_notification(category: str, outcome: str, reason: str = "", how_many: int = 1) -> None:
    NOTIFICATIONS.labels(known_category(category), outcome, reason).inc(how_many)


def observe_delivered(category: str, seconds: float) -> None:
    """A message the relay accepted ``seconds`` after the API accepted it."""
    count_notification(category, "sent")
    DELIVERY_SECONDS.labels(lane_of(category)).observe(max(seconds, 0.0))


def reply_class(smtp_code: int | None) -> str:
    """``4xx`` or ``5xx`` for a relay's reply, ``connection`` when there was none."""
    if smtp_code is None:
        return "connection"
    return f"{smtp_code // 100}xx"


def observe_smtp(seconds: float, *, refused: bool = False, smtp_code: int | None = None) -> None:
    """One hand-over to the relay; ``refused`` with the reply's code (None: no reply)."""
    SMTP_SECONDS.observe(seconds)
    if refused:
        SMTP_ERRORS.labels(reply_class(smtp_code)).inc()
