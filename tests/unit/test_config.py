"""Unit tests for notify.config: settings from NOTIFY_* variables, and the SMTP URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notify.config import (
    DEV_SECRET_KEY,
    ConfigurationError,
    Settings,
    SmtpTarget,
    load_settings,
    load_settings_or_exit,
)

REAL_SECRET = "b7f3c1e9a2d84f6e9c0b1a2d3e4f5a6b7c8d9e0f1a2b3c4d"
PRODUCTION = {
    "NOTIFY_ENV": "production",
    "NOTIFY_SECRET_KEYS": REAL_SECRET,
    "NOTIFY_HASH_KEY": "5d0c7e2a91f84b36a7c2e9d1f0b3a4c5d6e7f8091a2b3c4d",
    "NOTIFY_DATA_KEYS": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978",
    "NOTIFY_PUBLIC_URL": "https://notify.example.com",
    "NOTIFY_POSTAL_ADDRESS": "42 Harbour Road, Port Town, PT4 2HR",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Each test starts from the built-in defaults, whatever the shell exported."""
    for name in list(os.environ):
        if name.upper().startswith("NOTIFY_"):
            monkeypatch.delenv(name)


def set_env(monkeypatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def refusal(monkeypatch, **variables: str) -> str:
    set_env(monkeypatch, **variables)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    return str(caught.value)


# --- defaults --------------------------------------------------------------------------------


def test_the_defaults_load_as_a_development_setup():
    settings = load_settings()

    assert settings.env == "development"
    assert settings.database_url.startswith("sqlite")
    assert settings.smtp.is_mailbox
    assert settings.public_url.startswith("http")
    assert settings.secret_key_list == [DEV_SECRET_KEY]
    assert settings.postal_address.strip()
    assert settings.retry_max_seconds < settings.visibility_timeout_seconds
    assert settings.task_time_limit_seconds < settings.visibility_timeout_seconds


def test_a_variable_from_the_environment_overrides_its_default(monkeypatch):
    assert load_settings().company_name != "Harbour Widgets Ltd"

    set_env(monkeypatch, NOTIFY_COMPANY_NAME="Harbour Widgets Ltd")

    assert load_settings().company_name == "Harbour Widgets Ltd"


def test_settings_are_frozen():
    settings = load_settings()

    with pytest.raises(ValueError, match="frozen"):
        settings.company_name = "Changed"  # type: ignore[misc]


# --- bad values name their variable ----------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NOTIFY_SMTP_URL", "ftp://x"),
        ("NOTIFY_SMTP_URL", "smtp://"),
        ("NOTIFY_SMTP_URL", "smtp://relay.example:99999"),
        ("NOTIFY_SMTP_URL", "file://"),
        ("NOTIFY_DATABASE_URL", "mysql://x"),
        ("NOTIFY_PUBLIC_URL", "notify.example.com"),
        ("NOTIFY_PUBLIC_URL", "/relative/path"),
        ("NOTIFY_PUBLIC_URL", "ftp://notify.example.com"),
        ("NOTIFY_SECRET_KEYS", " , ,"),
        ("NOTIFY_MAX_ATTEMPTS", "0"),
        ("NOTIFY_SMTP_TIMEOUT_SECONDS", "soon"),
    ],
)
def test_a_bad_value_is_refused_with_a_message_naming_its_variable(monkeypatch, variable, value):
    message = refusal(monkeypatch, **{variable: value})

    assert message.startswith(f"{variable}:")
    assert "\n" not in message


def test_the_refusal_of_an_smtp_url_does_not_echo_its_password(monkeypatch):
    message = refusal(monkeypatch, NOTIFY_SMTP_URL="ftp://mailer:hunter2-secret@relay.example")

    assert "NOTIFY_SMTP_URL" in message
    assert "hunter2" not in message


def test_a_retry_delay_not_below_the_visibility_timeout_is_refused(monkeypatch):
    message = refusal(
        monkeypatch,
        NOTIFY_RETRY_MAX_SECONDS="3600",
        NOTIFY_VISIBILITY_TIMEOUT_SECONDS="3600",
    )

    assert "NOTIFY_RETRY_MAX_SECONDS" in message
    assert "NOTIFY_VISIBILITY_TIMEOUT_SECONDS" in message


def test_a_task_time_limit_not_below_the_visibility_timeout_is_refused(monkeypatch):
    message = refusal(
        monkeypatch,
        NOTIFY_TASK_TIME_LIMIT_SECONDS="4000",
        NOTIFY_VISIBILITY_TIMEOUT_SECONDS="3600",
    )

    assert "NOTIFY_TASK_TIME_LIMIT_SECONDS" in message


def test_a_retry_delay_just_below_the_visibility_timeout_is_accepted(monkeypatch):
    set_env(monkeypatch, NOTIFY_RETRY_MAX_SECONDS="3599", NOTIFY_VISIBILITY_TIMEOUT_SECONDS="3600")

    settings = load_settings()

    assert settings.retry_max_seconds == 3599


# --- production ------------------------------------------------------------------------------


def test_production_with_the_built_in_development_secret_is_refused(monkeypatch):
    message = refusal(monkeypatch, **{**PRODUCTION, "NOTIFY_SECRET_KEYS": DEV_SECRET_KEY})

    assert "NOTIFY_SECRET_KEYS" in message


def test_production_with_the_development_secret_among_real_ones_is_refused(monkeypatch):
    keys = f"{REAL_SECRET}, {DEV_SECRET_KEY}"
    message = refusal(monkeypatch, **{**PRODUCTION, "NOTIFY_SECRET_KEYS": keys})

    assert "NOTIFY_SECRET_KEYS" in message


def test_production_without_any_secret_setting_is_refused(monkeypatch):
    environment = {key: value for key, value in PRODUCTION.items() if key != "NOTIFY_SECRET_KEYS"}

    message = refusal(monkeypatch, **environment)

    assert "NOTIFY_SECRET_KEYS" in message


@pytest.mark.parametrize("address", ["", "   "])
def test_production_with_an_empty_postal_address_is_refused(monkeypatch, address):
    message = refusal(monkeypatch, **{**PRODUCTION, "NOTIFY_POSTAL_ADDRESS": address})

    assert "NOTIFY_POSTAL_ADDRESS" in message


def test_production_with_a_plain_http_public_url_is_refused(monkeypatch):
    message = refusal(
        monkeypatch, **{**PRODUCTION, "NOTIFY_PUBLIC_URL": "http://notify.example.com"}
    )

    assert "NOTIFY_PUBLIC_URL" in message


def test_production_with_a_real_secret_https_url_and_an_address_loads(monkeypatch):
    set_env(monkeypatch, **{**PRODUCTION, "NOTIFY_PUBLIC_URL": "https://notify.example.com/"})

    settings = load_settings()

    assert settings.env == "production"
    assert settings.secret_key_list == [REAL_SECRET]
    assert settings.public_url == "https://notify.example.com"  # no trailing slash
    assert settings.postal_address == PRODUCTION["NOTIFY_POSTAL_ADDRESS"]


def test_development_accepts_the_development_secret_and_an_empty_address(monkeypatch):
    set_env(monkeypatch, NOTIFY_POSTAL_ADDRESS="")

    settings = load_settings()

    assert settings.secret_key_list == [DEV_SECRET_KEY]


# --- secret keys -----------------------------------------------------------------------------


def test_secret_key_list_splits_oldest_first_and_drops_blanks(monkeypatch):
    set_env(monkeypatch, NOTIFY_SECRET_KEYS=" oldest-key ,, middle-key,  ,newest-key, ")

    assert load_settings().secret_key_list == ["oldest-key", "middle-key", "newest-key"]


# --- SMTP URL --------------------------------------------------------------------------------


def test_a_starttls_url_gives_host_port_and_decoded_credentials():
    target = SmtpTarget("smtp+starttls://user:p%40ss@relay.example:587")

    assert target.scheme == "smtp+starttls"
    assert target.host == "relay.example"
    assert target.port == 587
    assert target.username == "user"
    assert target.password == "p@ss"
    assert not target.is_mailbox


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("smtps://relay.example", 465),
        ("smtp+starttls://relay.example", 587),
        ("smtp://relay.example", 25),
        ("smtp://relay.example:2525", 2525),
    ],
)
def test_each_scheme_has_its_default_port_unless_one_is_given(url, port):
    target = SmtpTarget(url)

    assert target.host == "relay.example"
    assert target.port == port
    assert target.username is None
    assert target.password is None


def test_a_file_url_gives_a_mailbox_path():
    target = SmtpTarget("file:///tmp/box")

    assert target.is_mailbox
    assert target.mailbox == Path("/tmp/box")


def test_a_percent_encoded_file_url_is_decoded():
    assert SmtpTarget("file:///srv/notify/mail%20box").mailbox == Path("/srv/notify/mail box")


def test_the_settings_expose_the_parsed_smtp_target(monkeypatch):
    set_env(monkeypatch, NOTIFY_SMTP_URL="smtps://mailer:s3cr%2Fet@relay.example")

    target = load_settings().smtp

    assert target.scheme == "smtps"
    assert target.port == 465
    assert target.password == "s3cr/et"


@pytest.mark.parametrize("url", ["ftp://x", "http://relay.example", "smtp://", "relay.example"])
def test_an_unusable_smtp_url_raises_value_error(url):
    with pytest.raises(ValueError):
        SmtpTarget(url)


# --- entry points ----------------------------------------------------------------------------


def test_an_entry_point_exits_with_one_stderr_line_naming_the_variable(monkeypatch, capsys):
    set_env(monkeypatch, NOTIFY_SMTP_URL="ftp://x")

    with pytest.raises(SystemExit) as caught:
        load_settings_or_exit()

    assert caught.value.code not in (0, None)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert "NOTIFY_SMTP_URL" in lines[0]
    assert captured.err.endswith("\n")
    assert "Traceback" not in captured.err


def test_an_entry_point_returns_the_settings_when_the_configuration_is_good(capsys):
    settings = load_settings_or_exit()

    assert isinstance(settings, Settings)
    assert capsys.readouterr().err == ""


def test_production_with_the_built_in_hash_key_is_refused(monkeypatch):
    from notify.config import DEV_HASH_KEY

    message = refusal(monkeypatch, **{**PRODUCTION, "NOTIFY_HASH_KEY": DEV_HASH_KEY})
    assert "NOTIFY_HASH_KEY" in message


def test_a_default_subscription_to_an_essential_or_unknown_category_is_refused(monkeypatch):
    for value in ("security", "no_such_category"):
        message = refusal(monkeypatch, NOTIFY_SUBSCRIBED_BY_DEFAULT=value)
        assert "NOTIFY_SUBSCRIBED_BY_DEFAULT" in message


def test_production_on_rabbitmq_needs_a_shared_rate_limit_store(monkeypatch):
    on_rabbitmq = {**PRODUCTION, "NOTIFY_BROKER_URL": "amqp://notify:secret@mq:5672/notify"}
    message = refusal(monkeypatch, **on_rabbitmq)
    assert "NOTIFY_RATE_LIMIT_URL" in message
    for key, value in {**on_rabbitmq, "NOTIFY_RATE_LIMIT_URL": "redis://redis:6379/1"}.items():
        monkeypatch.setenv(key, value)
    assert load_settings().rate_limit_storage == "redis://redis:6379/1"


@pytest.mark.parametrize("seconds", [None, 0.5])
def test_a_worker_on_the_sql_broker_polls_its_queues_at_the_configured_interval(
    tmp_path: Path, seconds: float | None
) -> None:
    from notify.celery_app import create_celery

    given = {} if seconds is None else {"broker_poll_seconds": seconds}
    settings = Settings(broker_url=f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}", **given)
    app = create_celery(settings)
    with app.connection_for_read() as connection:
        assert connection.transport.polling_interval == (seconds or 0.1)
        queue = connection.SimpleQueue("poll-test")  # makes the broker's engine and tables
        queue.put("a body")
        assert queue.get(timeout=2).payload == "a body"
        queue.close()


def test_a_broker_poll_interval_out_of_range_is_refused() -> None:
    for seconds in (0, -1, 11):
        with pytest.raises(ValueError, match="broker_poll_seconds"):
            Settings(broker_poll_seconds=seconds)
