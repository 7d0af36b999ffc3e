"""The README a new user reads first: a working example for each template, every variable the
tests read, the `make run` and command-line lines matching the commands, and no link that leaves
the repository. Reads files only."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path
from typing import Any

import typer.main
from typer.core import TyperGroup

from notify.cli.app import app
from notify.message.templates import catalogue

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def code_blocks() -> list[str]:
    return FENCE.findall(README)


def prose() -> str:
    """The README without its code blocks and inline code: what a reader can click on."""
    text = FENCE.sub("", README)
    return re.sub(r"`[^`\n]*`", "", text)


def request_bodies() -> list[dict[str, object]]:
    """Every JSON body a curl line of the README sends to a template (``-d '…'``, over several
    lines, to /v1/notifications or /v1/campaigns)."""
    bodies = []
    for block in code_blocks():
        for command in re.findall(r"curl .*?-d '\{.*?\}'", block, re.S):
            if "/v1/notifications" in command or "/v1/campaigns" in command:
                raw = re.search(r"-d '(\{.*\})'", command, re.S)
                assert raw is not None
                bodies.append(json.loads(raw.group(1)))
    return bodies


def variables_the_tests_read() -> set[str]:
    """Names passed to ``os.environ.get``, ``os.getenv`` or ``os.environ[...]`` in tests/."""
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            target = None
            if isinstance(node, ast.Call) and node.args:
                called = ast.unparse(node.func)
                if called in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                    target = node.args[0]
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and ast.unparse(node.value) == "os.environ"
            ):
                target = node.slice
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                names.add(target.value)
    return names


def test_each_template_with_sample_data_has_a_curl_example_sending_exactly_it() -> None:
    sent = {body["template"]: body.get("data") for body in request_bodies()}
    with_samples = {name: t.sample for name, t in catalogue().items() if t.sample}
    assert set(with_samples) == {
        "security_alert",
        "admin_notice",
        "product_update",
        "markdown_update",
    }
    for name, sample in with_samples.items():
        assert sent.get(name) == sample, f"README example for {name} differs from its sample"


def test_every_curl_body_names_a_template_and_gives_each_variable_it_needs() -> None:
    for body in request_bodies():
        template = catalogue()[str(body["template"])]
        data = body.get("data")
        assert isinstance(data, dict)
        assert set(template.variables) <= set(data), body["template"]


def test_every_variable_the_tests_read_is_in_the_readme() -> None:
    names = variables_the_tests_read()
    assert {"NOTIFY_TEST_REDIS_URL", "NOTIFY_TEST_POSTGRES_ADMIN_URL"} <= names
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert missing == []


def test_no_link_leaves_the_repository() -> None:
    text = prose()
    assert not re.search(r"https?://", text), "a URL outside code in the README"
    assert "<http" not in README
    for target in re.findall(r"\]\(([^)]+)\)", README):
        assert "://" not in target and not target.startswith(("//", "mailto:")), target
        assert (ROOT / target.split("#")[0]).exists(), target
    for block in code_blocks():
        for url in re.findall(r"https?://[^\s'\"`)]+", block):
            host = url.split("/")[2]
            assert host.startswith(("127.0.0.1", "localhost")) or host.endswith("example.com"), url


def test_the_first_ten_minutes_are_described() -> None:
    for line in (
        "make run PORT=8001 HOST=0.0.0.0",
        "`var/dev-api-key` (mode 0600)",
        "export KEY=$(cat var/dev-api-key)",
        "`make run PORT=8001`",
        "Ctrl-C, SIGTERM or\nclosing the terminal stops all of it",
        "its web server and worker\nstop too (Linux)",
        "key with every scope",
    ):
        assert line in README, line


def _command(words: list[str]) -> tuple[Any, list[str]]:
    """The `notify` command a README line names, and the words after it."""
    command: Any = typer.main.get_command(app)
    rest = list(words)
    while isinstance(command, TyperGroup) and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def test_every_notify_line_of_the_command_list_names_real_commands_and_options() -> None:
    listing = next(block for block in code_blocks() if block.startswith("notify db upgrade"))
    checked = 0
    for line in listing.splitlines():
        for part in line.split("#")[0].split(" ; "):
            words = shlex.split(part.replace("[", " ").replace("]", " "))
            if not words or words[0] != "notify":
                continue
            alternatives = words[1:]
            if "|" in " ".join(alternatives[:2]):  # schedule|pause|resume|cancel ID
                group, verbs = alternatives[0], alternatives[1].split("|")
                lines = [[group, verb, *alternatives[2:]] for verb in verbs]
            else:
                lines = [alternatives]
            for words_after in lines:
                command, rest = _command(words_after)
                assert not isinstance(command, TyperGroup), part
                options = {name for param in command.params for name in param.opts}
                for word in rest:
                    if word.startswith("--"):
                        assert word.split("=")[0] in options, f"{part}: {word}"
                checked += 1
    assert checked >= 20


def test_the_make_run_line_matches_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "PORT ?= 8000" in makefile and "notify dev --host $(HOST) --port $(PORT)" in makefile
