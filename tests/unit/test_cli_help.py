"""Every `notify` command and option explains itself, names its values in words, and its help
fits an 80-column terminal."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator

import pytest
import typer.main
from typer.core import TyperArgument, TyperGroup
from typer.testing import CliRunner

from notify.cli.app import app

TYPE_MARKUP = re.compile(r"<[a-z][a-z_\[\], |]*>")  # what typer prints: <str>, <list[str]>, <bool>


def commands() -> Iterator[tuple[list[str], typer.core.TyperCommand | TyperGroup]]:
    root = typer.main.get_command(app)
    stack: list[tuple[list[str], typer.core.TyperCommand | TyperGroup]] = [([], root)]
    while stack:
        path, command = stack.pop()
        yield path, command
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                stack.append(([*path, name], sub))


PATHS = sorted(" ".join(path) for path, _ in commands())


def test_every_command_and_parameter_has_help() -> None:
    missing = []
    for path, command in commands():
        if not (command.help or "").strip():
            missing.append(" ".join(path) or "notify")
        for param in command.params:
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{' '.join(path)} {param.name}")
    assert missing == []


def test_the_first_paragraph_of_each_help_is_one_sentence_for_the_command_list() -> None:
    for path, command in commands():
        first = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert "\n" not in first, f"{' '.join(path)}: {first!r}"


@pytest.mark.parametrize("path", PATHS)
def test_help_names_values_in_words_and_fits_80_columns(path: str) -> None:
    result = CliRunner().invoke(
        app, [*path.split(), "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"}
    )
    assert result.exit_code == 0, result.output
    assert TYPE_MARKUP.search(result.output) is None, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80, result.output


def test_arguments_show_their_name_in_capitals() -> None:
    result = CliRunner().invoke(app, ["campaigns", "watch", "--help"], env={"COLUMNS": "80"})
    assert "CAMPAIGN_ID" in result.output
    assert "--interval" in result.output and "SECONDS" in result.output
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    keys = root.commands["keys"]
    assert isinstance(keys, TyperGroup)
    revoke = keys.commands["revoke"]
    context = revoke.make_context("revoke", ["7"])
    (argument,) = [p for p in revoke.get_params(context) if isinstance(p, TyperArgument)]
    assert argument.metavar == "KEY_ID"


def test_a_missing_argument_is_named_in_words() -> None:
    result = CliRunner().invoke(app, ["campaigns", "pause"], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    assert "CAMPAIGN_ID" in result.output
