"""The service's configuration: one typed object read from ``NOTIFY_*`` environment variables.

Built by :func:`load_settings` at process start, never at import time. Production refuses the
built-in development secrets and an empty postal address.
"""

from __future__ import annotations

import sys
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "dev-only-secret-do-not-use-in-production"  # noqa: S105 (a known placeholder)
DEV_HASH_KEY = "dev-only-hash-key-do-not-use-in-production"
DEV_DATA_KEY = "dev-only-data-key-do-not-use-in-production"
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps", "file")


class ConfigurationError(Exception):
    """Bad configuration; the message is one readable line that names the variable."""


class SmtpTarget:
    """Where mail goes, parsed from ``NOTIFY_SMTP_URL``."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in SMTP_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SMTP_SCHEMES)}")
        self.scheme = parts.scheme
        if self.scheme == "file":
            if not parts.path:
                raise ValueError("file:// needs a folder path, e.g. file:///srv/notify/mailbox")
            self.mailbox = Path(unquote(parts.netloc + parts.path))
            self.host, self.port, self.username, self.password = "", 0, None, None
            return
        if not parts.hostname:
            raise ValueError("needs a host, e.g. smtp://127.0.0.1:25")
        self.mailbox = Path()
        self.host = parts.hostname
        default_port = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}[self.scheme]
        self.port = parts.port or default_port
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None

    @property
    def is_mailbox(self) -> bool:
        return self.scheme == "file"


class Settings(BaseSettings):
    """Every setting the service reads. Field ``x`` comes from ``NOTIFY_X``."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFY_", env_file=None, extra="ignore", frozen=True
    )

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///var/notify.sqlite"
    broker_url: str = "sqla+sqlite:///var/broker.sqlite"
    smtp_url: str = "file://var/mailbox"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_ca_file: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    secret_keys: str = DEV_SECRET_KEY
    hash_key: str = DEV_HASH_KEY
    data_keys: str = DEV_DATA_KEY
    retention_content_days: int = Field(default=30, gt=0)
    retention_log_days: int = Field(default=395, gt=0)
    preferences_token_days: int = Field(default=30, gt=0)
    preferences_link_interval_seconds: int = Field(default=600, ge=0)
    subscribed_by_default: str = "product_updates"
    scanner_burst_seconds: int = Field(default=60, ge=1, le=3600)
    """The window in which presses of the unsubscribe page's button are counted for a burst."""
    scanner_burst_per_network: int = Field(default=5, ge=2)
    """Presses from one network (an IPv4 /24 or IPv6 /48) within ``scanner_burst_seconds``,
    each for a different person and soon after their message was sent, that make a burst."""
    scanner_burst_per_domain: int = Field(default=20, ge=2)
    """The same for people whose addresses share one domain (higher: a big mailbox provider's
    people press at the same time more often than one network's)."""
    scanner_early_seconds: int = Field(default=300, ge=0)
    """Only presses this soon after the person's message was sent count toward a burst
    (scanners press within seconds of delivery; people mostly later); 0 counts every press."""
    scanner_hold_minutes: int = Field(default=60, ge=0)
    """How long presses from a source that made a burst are asked for an explicit
    confirmation; 0 only flags the burst and asks nothing."""

    sending_domain: str = "notify.localhost"
    from_security: str = "Security <security@notify.localhost>"
    from_admin: str = "Accounts <accounts@notify.localhost>"
    from_product_updates: str = "Product news <news@notify.localhost>"
    company_name: str = "Example Ltd"
    default_locale: str = "en"
    """The language for a person whose locale is unknown or not shipped, before English: each
    message and page takes the first of the person's locale chain (``de-AT`` → ``de``), then
    this, then ``en``, that notify ships (``en``, ``de``, ``fr``)."""
    postal_address: str = "1 Example Street, Example Town, EX1 1EX"

    metrics_token: str = ""
    """A bearer token ``GET /metrics`` on the web requires. Without one, ``/metrics`` is open in
    development and answers 404 in production, so metrics are never public by accident."""
    metrics_bind: str = "127.0.0.1"
    """The address a worker's metrics port listens on (``0.0.0.0`` inside a container whose
    port is not published)."""
    worker_metrics_port: int = Field(default=9808, ge=0, le=65535)
    """The port a Celery worker serves ``/metrics`` on, for its main and pool processes
    together; 0 serves none. A second worker on the same host needs a port of its own."""
    log_format: Literal["auto", "json", "text"] = "auto"
    """``json``: one JSON object a line (structlog), for log collectors; ``text``: readable
    lines; ``auto``: json in production, text in development."""
    worker_events: bool = False
    """Workers send Celery task events, so Flower (or ``celery events``) can show tasks live."""
    max_data_bytes: int = Field(default=16_384, gt=0)
    max_body_bytes: int = Field(default=32_768, gt=0)
    """The largest request body of the JSON API and the public pages, in bytes. Counted while
    the body streams in, with or without Content-Length: a larger one is answered 413 and no
    more of it is read. Must be above ``max_data_bytes``."""
    max_import_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """The largest body of the bulk routes, ``POST /v1/users/import`` and ``POST /v1/campaigns``
    (whose audience may list 30,000 user ids), enforced the same way."""
    max_header_bytes: int = Field(default=16_384, ge=4096)
    """The longest request line plus headers ``notify web`` and ``notify dev`` accept (uvicorn's
    h11 ``max_incomplete_event_size``); a longer one is refused with 400 and the connection
    closed."""
    console_session_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 86400)
    """How long a console sign-in lasts (from signing in; signing out or a new password ends
    it at once)."""
    console_login_attempts_per_minute: int = Field(default=5, ge=1, le=1000)
    """Sign-in attempts per address per minute (and ten times as many per client address);
    more are answered 429 with Retry-After."""
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    """How long the web process trusts a key it has checked, without asking the database
    again: a revoked key is refused at most this long after the revocation. 0 checks every
    request."""
    database_connect_timeout_seconds: int = Field(default=5, ge=2, le=60)
    """How long the web process waits for a new PostgreSQL connection; then it answers 503."""

    max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: int = Field(default=600, gt=0)
    visibility_timeout_seconds: int = Field(default=3600, gt=0)
    broker_poll_seconds: float = Field(default=0.1, gt=0, le=10)
    task_time_limit_seconds: int = Field(default=300, gt=0)
    send_attempt_seconds: int = Field(default=90, gt=0)
    """The longest one transactional send may live from its claim: the SMTP exchange, then
    recording the relay's answer, retried through a database outage. The send task's hard
    time limit; the sweeper never takes back a ``sending`` row younger than this."""
    send_batch_size: int = Field(default=50, ge=1, le=1000)
    """The most transactional messages one send task carries: the web and the sweeper publish
    ids in groups of up to this many per lane, and a worker claims a group in one statement.
    A message's eligibility is checked at that claim, so it goes out at most the sending time
    of the messages before it in its group after the check."""
    send_commit_every: int = Field(default=10, ge=1, le=1000)
    """Relay acceptances a worker records ``sent`` in one write. A worker process killed after
    the relay accepted a message and before this write re-sends at most this many messages
    (the sweeper finds them ``sending``); 1 is the strictest bound, at one write per message."""
    publish_linger_seconds: float = Field(default=0.05, ge=0, le=0.5)
    """The web's publisher publishes at most once in this many seconds unless a full task of
    ``send_batch_size`` ids is waiting, so accepted notifications that arrive together go in
    one task; one that comes after a quiet spell goes at once. 0 publishes whenever the
    publisher is free."""
    worker_niceness: int = Field(default=0, ge=0, le=19)
    """Added to a worker's CPU niceness as it starts, before its pool processes fork (they
    inherit it). Where a bulk worker shares cores with the web and the essential worker, 10
    lets a campaign take only the CPU they leave idle, so a security alert is not queued behind
    it; 0 leaves the worker as the system started it. Within one cgroup only: containers share
    CPU by their weight (``cpu_shares`` in docker-compose.yml), not by niceness."""
    sweep_queued_after_seconds: int = Field(default=120, gt=0)
    sweep_sending_after_seconds: int = Field(default=120, gt=0)
    """A ``sending`` row older than this was left by a dead worker and is sent again. Must be
    above ``send_attempt_seconds``, so a live attempt is never doubled."""
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    sweep_max_per_run: int = Field(default=5000, gt=0)
    """Rows one sweeper run publishes again, at most (in pages of 500): a backlog of 100,000
    after a broker outage drains in about five minutes without flooding the broker."""

    campaign_commit_every: int = Field(default=20, ge=1, le=500)
    """Campaign messages a batch claims and records in one transaction. A worker killed
    mid-batch re-sends at most this many messages per batch in flight, and a pause, cancel or
    unsubscribe acts within this many messages of the batch (for a rate-limited campaign,
    within about a quarter of a second of its rate). 1 keeps one message."""
    campaign_yield_seconds: float = Field(default=1.0, ge=0, le=10)
    """The longest a campaign group waits, before its claim, while essential messages wait on a
    Redis or RabbitMQ broker (only on a worker that does not serve the essential lane). 0 never
    waits."""
    campaign_batch_size: int = Field(default=500, ge=1, le=5000)
    campaign_batch_seconds: float = Field(default=60.0, gt=0)
    campaign_batch_lease_seconds: int = Field(default=15, ge=3)
    """A batch's lease, renewed by its holder every third of it: a dead worker's batch is
    picked up by another within this plus the dispatch interval."""
    campaign_stale_after_seconds: int = Field(default=3600, gt=0)
    campaign_requeue_after_seconds: int = Field(default=900, gt=0)
    campaign_dispatch_interval_seconds: float = Field(default=10.0, gt=0, le=30)
    default_timezone: str = "UTC"
    rate_limit_url: str = ""
    campaign_pause_complaint_rate: float = Field(default=0.003, ge=0, le=1)
    """A running campaign pauses itself (``needs_attention``) once its complaints reach this
    share of its sent messages (0.3 %, the rate above which the large mailbox providers start
    refusing mail); 0 never pauses for complaints."""
    campaign_pause_bounce_rate: float = Field(default=0.05, ge=0, le=1)
    """The same for hard bounces (5 %: a list that old or bought); 0 never pauses for them."""
    campaign_pause_min_sent: int = Field(default=1000, ge=1)
    """Sent messages a campaign needs before either rate is judged."""

    soft_bounce_days: int = Field(default=3, ge=1, le=100)
    """An address whose soft bounces (a full mailbox, a server that refused for now) fell on
    this many different UTC days within ``NOTIFY_SOFT_BOUNCE_WINDOW_DAYS`` is suppressed like
    a hard bounce."""
    soft_bounce_window_days: int = Field(default=14, ge=1, le=365)
    """The window the soft bounces are counted in, from the first one; one later than that
    starts a new window."""
    ses_topic_arns: str = ""
    """The Amazon SNS topics (comma-separated ARNs) whose SES bounce and complaint
    notifications ``POST /inbound/ses`` accepts; empty turns the route off (404)."""
    inbound_keep_dir: str = "var/inbound"
    """Where `notify inbound` keeps a returned message it cannot read, for an operator. Files
    older than ``NOTIFY_RETENTION_CONTENT_DAYS`` are removed as new ones come."""
    inbound_keep_max_mb: int = Field(default=100, ge=1)
    """The most the kept messages may take; past it a message is not kept (a warning says so)."""
    inbound_domain: str = ""
    """Where mail comes back to notify (``notify inbound`` receives it): when set, each message
    is sent from ``bounces+<token>@`` this domain (VERP) and its ``List-Unsubscribe`` offers
    ``mailto:unsubscribe+<token>@`` this domain beside the https URL. Empty: neither (bounces
    go to the From address, as the relay handles them)."""

    callback_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """How long one callback delivery waits for the receiver's answer (connecting included)."""
    callback_retry_hours: float = Field(default=25.0, ge=0.01, le=24 * 14)
    """How long an event is retried after it happened (exponential backoff with jitter, from
    5 seconds up to an hour between attempts); then it is marked dead and can be replayed."""
    callback_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often beat asks the callbacks lane to deliver what is due: a new event leaves at
    most about this long after its change is committed."""
    callback_batch_size: int = Field(default=50, ge=1, le=1000)
    """Events one delivery task takes at a time (oldest due first)."""

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _parsable_smtp(cls, value: str) -> str:
        SmtpTarget(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL, e.g. https://notify.example.com")
        return value.rstrip("/")

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone such as Europe/London") from None
        return value

    @field_validator("default_locale")
    @classmethod
    def _language_tag(cls, value: str) -> str:
        from notify.message.validation import locale_tag

        return locale_tag(value)

    @field_validator("subscribed_by_default")
    @classmethod
    def _known_optional_categories(cls, value: str) -> str:
        from notify.categories import CATEGORIES

        for key in (key.strip() for key in value.split(",") if key.strip()):
            category = CATEGORIES.get(key)
            if category is None or category.essential:
                raise ValueError(f"{key!r} is not a non-essential category")
        return value

    @field_validator("secret_keys")
    @classmethod
    def _some_key(cls, value: str) -> str:
        if not [key for key in value.split(",") if key.strip()]:
            raise ValueError("needs at least one key (comma list, newest last)")
        return value

    @model_validator(mode="after")
    def _delays_below_visibility_timeout(self) -> Settings:
        # Redis re-delivers an unacked task after the visibility timeout: a longer countdown,
        # or a task running longer, would run twice.
        limit = self.visibility_timeout_seconds
        if self.retry_max_seconds >= limit or self.task_time_limit_seconds >= limit:
            raise ValueError(
                "NOTIFY_RETRY_MAX_SECONDS and NOTIFY_TASK_TIME_LIMIT_SECONDS must be below "
                "NOTIFY_VISIBILITY_TIMEOUT_SECONDS"
            )
        if self.campaign_batch_seconds > self.task_time_limit_seconds / 2:
            raise ValueError(
                "NOTIFY_CAMPAIGN_BATCH_SECONDS must be at most half NOTIFY_TASK_TIME_LIMIT_SECONDS"
            )
        if self.send_attempt_seconds >= limit:
            raise ValueError(
                "NOTIFY_SEND_ATTEMPT_SECONDS must be below NOTIFY_VISIBILITY_TIMEOUT_SECONDS"
            )
        if self.smtp_timeout_seconds >= self.send_attempt_seconds:
            raise ValueError(
                "NOTIFY_SMTP_TIMEOUT_SECONDS must be below NOTIFY_SEND_ATTEMPT_SECONDS"
            )
        if self.sweep_sending_after_seconds <= self.send_attempt_seconds:
            raise ValueError(
                "NOTIFY_SWEEP_SENDING_AFTER_SECONDS must exceed NOTIFY_SEND_ATTEMPT_SECONDS, "
                "or the sweeper could send again a message whose first attempt is still alive"
            )
        if self.campaign_batch_lease_seconds >= limit:
            raise ValueError(
                "NOTIFY_CAMPAIGN_BATCH_LEASE_SECONDS must be below "
                "NOTIFY_VISIBILITY_TIMEOUT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _body_limits_hold_the_data(self) -> Settings:
        if self.max_body_bytes <= self.max_data_bytes:
            raise ValueError("NOTIFY_MAX_BODY_BYTES must be above NOTIFY_MAX_DATA_BYTES")
        if self.max_import_bytes < self.max_body_bytes:
            raise ValueError("NOTIFY_MAX_IMPORT_BYTES must be at least NOTIFY_MAX_BODY_BYTES")
        return self

    @model_validator(mode="after")
    def _production_refuses_development_defaults(self) -> Settings:
        if self.env != "production":
            return self
        if DEV_SECRET_KEY in self.secret_key_list:
            raise ValueError("NOTIFY_SECRET_KEYS still holds the built-in development key")
        if self.hash_key == DEV_HASH_KEY:
            raise ValueError("NOTIFY_HASH_KEY is still the built-in development key")
        if DEV_DATA_KEY in self.data_key_list:
            raise ValueError("NOTIFY_DATA_KEYS still holds the built-in development key")
        if not self.postal_address.strip():
            raise ValueError("NOTIFY_POSTAL_ADDRESS must be set in production")
        if not self.public_url.startswith("https://"):
            raise ValueError("NOTIFY_PUBLIC_URL must be https:// in production")
        if self.smtp.scheme == "smtp" and self.smtp.username:
            raise ValueError(
                "NOTIFY_SMTP_URL sends credentials in clear: use smtp+starttls:// or smtps://"
            )
        if self.broker_is_rabbitmq and self.rate_limit_storage.startswith("memory://"):
            raise ValueError(
                "NOTIFY_RATE_LIMIT_URL must name a Redis in production with RabbitMQ as the "
                "broker: in memory, each worker process would count campaign rates and console "
                "sign-in attempts on its own"
            )
        return self

    @property
    def secret_key_list(self) -> list[str]:
        """Keys oldest first; itsdangerous signs with the last and verifies with all."""
        return [key.strip() for key in self.secret_keys.split(",") if key.strip()]

    @property
    def data_key_list(self) -> list[str]:
        """Keys for personal data at rest, oldest first; the last encrypts, all decrypt."""
        return [key.strip() for key in self.data_keys.split(",") if key.strip()]

    @property
    def default_subscriptions(self) -> frozenset[str]:
        """Non-essential categories a person is subscribed to until they say otherwise."""
        return frozenset(
            key.strip() for key in self.subscribed_by_default.split(",") if key.strip()
        )

    @cached_property
    def smtp(self) -> SmtpTarget:
        return SmtpTarget(self.smtp_url)

    @property
    def rate_limit_storage(self) -> str:
        """Where campaign rate limits are counted: shared Redis when there is one."""
        if self.rate_limit_url:
            return self.rate_limit_url
        return self.broker_url if self.broker_is_redis else "memory://"

    @property
    def broker_is_redis(self) -> bool:
        return self.broker_url.startswith(("redis://", "rediss://"))

    @property
    def broker_is_rabbitmq(self) -> bool:
        return self.broker_url.startswith(("amqp://", "amqps://", "pyamqp://"))

    def sender_for(self, category: str) -> str:
        senders = {
            "security": self.from_security,
            "admin": self.from_admin,
            "product_updates": self.from_product_updates,
        }
        return senders.get(category, self.from_admin)


def load_settings() -> Settings:
    """Read the environment; raise :class:`ConfigurationError` with one line naming the variable.

    The message carries no prefix of its own: ``NOTIFY_X: why`` for one variable, or the rule
    itself (which names its variables) for a rule across several. The caller adds its prefix.
    """
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        message = " ".join(str(first["msg"]).removeprefix("Value error, ").split())
        line = f"NOTIFY_{field.upper()}: {message}" if field else message
        raise ConfigurationError(line) from None


def load_settings_or_exit() -> Settings:
    """For entry points: print ``notify: bad configuration: <reason>`` (one line, the prefix
    once) on stderr and exit 2 instead of a traceback."""
    try:
        return load_settings()
    except ConfigurationError as error:
        sys.stderr.write(f"notify: bad configuration: {error}\n")
        raise SystemExit(2) from None
