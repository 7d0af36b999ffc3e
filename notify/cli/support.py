"""Small helpers every ``notify`` command uses: fail with one line, settings, sessions."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer

from notify.config import Settings, load_settings_or_exit
from notify.db import SessionFactory, make_session_factory, open_database


def fail(message: str) -> NoReturn:
    typer.echo(f"notify: {message}", err=True)
    raise typer.Exit(2)


def settings() -> Settings:
    return load_settings_or_exit()


def sessions_for(config: Settings) -> SessionFactory:
    return make_session_factory(open_database(config))


def json_object(raw: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        fail(f"{option} is not valid JSON: {error.msg} at character {error.pos}")
    if not isinstance(value, dict):
        fail(f'{option} must be a JSON object, like \'{{"first_name": "Ada"}}\'')
    return value
