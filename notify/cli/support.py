"""Small helpers every ``notify`` command uses: fail with one line, settings, sessions, and the
``Typer`` every command group is built with (help that names values in words)."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

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


# --- help that names values in words ------------------------------------------------------------

_TYPE_WORDS: dict[object, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH"}


def _value_word(option: TyperOption) -> str:
    """``TEXT``, ``INTEGER``, ``NUMBER`` or ``PATH`` for an option's value (a list option: its
    items'); the option's own name in capitals for any other type."""
    annotation: object = getattr(getattr(option, "type_descriptor", None), "annotation", None)
    if typing.get_origin(annotation) in (list, tuple):
        annotation = next(iter(typing.get_args(annotation)), None)
    return _TYPE_WORDS.get(annotation, (option.name or "value").upper())


class _NamedArgument(TyperArgument):
    """An argument whose help shows its name in capitals (``CAMPAIGN_ID``) and no ``<int>``."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _name_values(params: list[Any]) -> list[Any]:
    """Give each parameter without a metavar one in words: arguments their name in capitals,
    options the word for their type, flags (``--html``, ``--help``) none at all. Typer would
    otherwise print ``<str>``, ``<list[str]>`` or ``<bool>``. Idempotent."""
    for param in params:
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = (param.name or "value").upper()
            param.__class__ = _NamedArgument
        elif isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = "" if param.is_flag else _value_word(param)
    return params


def unwrap(text: str | None) -> str | None:
    """A docstring's paragraphs each on one line, so help text is wrapped to the terminal's
    width instead of keeping the line breaks of the source (typer keeps them)."""
    if text is None:
        return None
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


class WordsCommand(TyperCommand):
    """A command whose help, usage line and errors name values in words (see _name_values),
    with its help text re-flowed to the terminal (see unwrap)."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.help = unwrap(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _name_values(list(super().get_params(ctx)))


class WordsGroup(TyperGroup):
    """A command group shown the same way as WordsCommand."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.help = unwrap(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _name_values(list(super().get_params(ctx)))


class CommandGroup(typer.Typer):
    """``typer.Typer`` for every ``notify`` command group: help on a bare call, no pretty
    tracebacks, and commands (unless given another ``cls``) that name values in words."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("cls", WordsGroup)
        options.setdefault("no_args_is_help", True)
        options.setdefault("pretty_exceptions_enable", False)
        super().__init__(**options)

    def command(
        self, *args: Any, **options: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        options.setdefault("cls", WordsCommand)
        return super().command(*args, **options)
