"""The ``notify`` command line. Wrong input gets one readable line and exit code 2."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from jinja2 import TemplateError
from sqlalchemy.exc import SQLAlchemyError

from notify.cli.campaigns import campaigns_app
from notify.cli.keys import keys_app
from notify.cli.operators import operators_app
from notify.cli.privacy import privacy_app
from notify.cli.support import CommandGroup, fail
from notify.cli.support import json_object as _json_object
from notify.cli.support import settings as _settings
from notify.cli.users import users_app
from notify.config import Settings
from notify.crypto import MISSING_KEY, UndecryptableError, missing_key

log = logging.getLogger("notify.cli")
app = CommandGroup(help="notify: essential notices always, product updates only by choice.")
db_app = CommandGroup(help="The database.")
templates_app = CommandGroup(help="Email templates.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(templates_app, name="templates")
app.add_typer(users_app, name="users")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(privacy_app, name="privacy")
app.add_typer(operators_app, name="operators")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest migration."""
    from notify.migrate import upgrade

    settings = _settings()
    try:
        upgrade(settings.database_url)
    except SQLAlchemyError as error:
        fail(f"cannot migrate the database: {type(error).__name__}: {error.args[0]}")
    typer.echo("database is up to date")


@app.command()
def web(
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(metavar="PORT", help="Port to listen on.", min=1, max=65535)
    ] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
) -> None:
    """Serve the HTTP API and pages with uvicorn.

    h11, the request head at most NOTIFY_MAX_HEADER_BYTES, no access log."""
    import uvicorn

    from notify.observability.logs import configure_logging
    from notify.observability.processes import share_metrics_between_processes
    from notify.web.routes.mailbox import is_loopback, pages_on

    settings = _settings()  # refuse bad configuration before uvicorn starts
    if pages_on(settings) and not is_loopback(host):
        log.warning(
            "the development mailbox pages are on and notify web binds %s: /dev/mailbox "
            "answers loopback clients only (set NOTIFY_SMTP_URL to a relay to turn it off)",
            host,
        )
    # uvicorn's workers are separate processes: they share one folder of metric files, so
    # /metrics answers the same whichever serves it (notify.observability.processes).
    share_metrics_between_processes()
    configure_logging(settings)  # this supervising process's own lines too
    uvicorn.run(
        "notify.web.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,  # the app sets logging up (notify.observability.logs)
        **uvicorn_limits(settings),
    )


@app.command()
def inbound(
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(metavar="PORT", help="Port to listen on.", min=1, max=65535)
    ] = 2525,
    metrics_port: Annotated[
        int,
        typer.Option(
            metavar="PORT",
            help="Serve /metrics (bounces and complaints received) here, on NOTIFY_METRICS_BIND;"
            " 0 serves none.",
            min=0,
            max=65535,
        ),
    ] = 0,
) -> None:
    """Receive bounces, complaints and mailto unsubscribes over SMTP (see NOTIFY_INBOUND_DOMAIN).

    Runs until interrupted."""
    import time

    from notify.db import make_session_factory, open_database
    from notify.inbound.server import serve
    from notify.observability import exposition
    from notify.observability.logs import configure_logging

    settings = _settings()
    configure_logging(settings)
    if not settings.inbound_domain:
        fail("NOTIFY_INBOUND_DOMAIN is not set: no message carries an address to come back to")
    if metrics_port:
        exposition.serve_port(metrics_port, settings.metrics_bind)
    controller = serve(make_session_factory(open_database(settings)), settings, host, port)
    typer.echo(f"receiving mail for {settings.inbound_domain} on {host}:{port}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


def uvicorn_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn options that bound what a client can make the server hold before the app runs.

    uvicorn's default HTTP parser (httptools, when installed) has no limit on the size of a
    request's head; h11 refuses a head larger than ``max_incomplete_event_size`` with 400 and
    closes the connection. ``notify dev`` passes the same options on uvicorn's command line.
    """
    return {"http": "h11", "h11_max_incomplete_event_size": settings.max_header_bytes}


@app.command()
def send(
    template: Annotated[
        str, typer.Option(metavar="NAME", help="Template name, see `notify templates list`.")
    ],
    user_id: Annotated[
        str, typer.Option("--user-id", metavar="ID", help="The producer's id for the user.")
    ],
    email: Annotated[
        str | None, typer.Option(metavar="ADDRESS", help="Address (needed for a new user).")
    ] = None,
    data: Annotated[
        str, typer.Option(metavar="JSON", help="Template variables as a JSON object.")
    ] = "{}",
) -> None:
    """Queue one notification, as POST /v1/notifications would, and print its id."""
    from notify.celery_app import create_celery
    from notify.db import make_session_factory, open_database
    from notify.delivery.enqueue import enqueue_send
    from notify.delivery.outbox import NotificationRequest, accept
    from notify.message.template_data import InvalidFieldError
    from notify.message.templates import TemplateNotFoundError
    from notify.message.validation import normalised_email

    settings = _settings()
    payload = _json_object(data, "--data")
    try:
        address = normalised_email(email) if email is not None else None
    except ValueError as error:
        fail(f"--email: {error}")
    sessions = make_session_factory(open_database(settings))
    request = NotificationRequest(template=template, user_id=user_id, email=address, data=payload)
    try:
        accepted = accept(
            sessions,
            None,
            request,
            max_data_bytes=settings.max_data_bytes,
            hash_key=settings.hash_key,
        )
    except TemplateNotFoundError:
        fail(f"unknown template {template!r}; see `notify templates list`")
    except InvalidFieldError as error:
        fail(f"{'.'.join(error.loc)} {error.msg}")
    except SQLAlchemyError as error:
        fail(f"cannot store the notification: {type(error).__name__}")
    if accepted.created:
        enqueue_send(create_celery(settings), accepted.id, accepted.category)
    typer.echo(accepted.id)


@templates_app.command("list")
def templates_list() -> None:
    """Every template with its category and the variables it needs."""
    from rich.console import Console
    from rich.table import Table

    from notify.message.templates import catalogue

    table = Table("template", "category", "essential", "variables")
    for template in catalogue().values():
        essential = "yes" if template.category.essential else "no"
        table.add_row(
            template.name, template.category.key, essential, ", ".join(template.variables)
        )
    Console().print(table)


@templates_app.command("preview")
def templates_preview(
    name: Annotated[str, typer.Argument(help="Template name, see `notify templates list`.")],
    data: Annotated[
        str,
        typer.Option(metavar="JSON", help="Variables as JSON; the template's sample fills gaps."),
    ] = "{}",
    html: Annotated[bool, typer.Option(help="Print the HTML part too.")] = False,
) -> None:
    """Render a template with sample data and print the subject and the text part."""
    from notify.message.composing import layout_context
    from notify.message.rendering import render
    from notify.message.templates import TemplateNotFoundError, get_template

    settings = _settings()
    payload = _json_object(data, "--data")
    try:
        template = get_template(name)
    except TemplateNotFoundError:
        fail(f"unknown template {name!r}; see `notify templates list`")
    layout = layout_context(
        settings,
        template.category,
        preferences_url=f"{settings.public_url}/preferences/PREVIEW",
        unsubscribe_url=f"{settings.public_url}/u/PREVIEW",
    )
    try:
        rendered = render(name, {**template.sample, **payload}, layout)
    except TemplateError as error:
        fail(f"cannot render {name}: {error}")
    typer.echo(f"Subject: {rendered.subject}\n\n{rendered.text}")
    if html:
        typer.echo(rendered.html)


@app.command()
def dev(
    port: Annotated[
        int,
        typer.Option(metavar="PORT", help="Web port (make run PORT=…).", min=1, max=65535),
    ] = 8000,
    host: Annotated[
        str,
        typer.Option(
            metavar="ADDRESS", help="Web address (make run HOST=…); 0.0.0.0 for every interface."
        ),
    ] = "127.0.0.1",
    state_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="FOLDER",
            help="Where the development key and beat's schedule are kept.",
            show_default="var/ in the repository",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Start web, worker and beat on the embedded default: what make run starts.

    Prints a working API key (kept in var/dev-api-key and reused by the next run), a curl line
    and the mailbox URL. Ctrl-C, SIGTERM or SIGHUP stops all of it."""
    from notify.cli.dev import run_dev

    raise typer.Exit(run_dev(port, host, state_dir))


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except TemplateError as error:
        _exit(str(error))
    except UnicodeDecodeError:
        _exit("the file is not UTF-8 text")
    except OverflowError:
        _exit("a number is too large")
    except (UndecryptableError, SQLAlchemyError) as error:
        if missing_key(error):
            _exit(f"{MISSING_KEY}; add the key to NOTIFY_DATA_KEYS (oldest first), then run again")
        _exit(f"database error ({type(error).__name__}); did you run `notify db upgrade`?")


def _exit(message: str) -> NoReturn:
    """Outside a command (typer has returned): one line on stderr, exit code 2."""
    sys.stderr.write(f"notify: {message}\n")
    raise SystemExit(2)


if __name__ == "__main__":
    main()
