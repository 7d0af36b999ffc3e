"""The key `make run` prints: every scope, kept in var/ (mode 0600), reused while it works; and
`notify keys create` naming the valid scopes. On SQLite files, no other service."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from notify.cli.app import app
from notify.cli.dev import development_key
from notify.config import Settings
from notify.db import SessionFactory, make_session_factory, open_database
from notify.migrate import upgrade
from notify.producers.api_keys import SCOPES, authenticate, create_key, revoke

pytestmark = pytest.mark.integration


def database(folder: Path) -> SessionFactory:
    url = f"sqlite:///{folder / 'notify.sqlite'}"
    upgrade(url)
    return make_session_factory(open_database(Settings(database_url=url)))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def scopes_of(sessions: SessionFactory, secret: str) -> frozenset[str] | None:
    with sessions() as session:
        caller = authenticate(session, secret)
    return None if caller is None else caller.scopes


def test_the_development_key_has_every_scope_and_is_reused(tmp_path: Path) -> None:
    sessions = database(tmp_path)
    key_file = tmp_path / "var" / "dev-api-key"
    key_file.parent.mkdir()

    first, reused = development_key(sessions, key_file)
    assert not reused
    assert scopes_of(sessions, first) == SCOPES
    assert "preferences:read" in SCOPES and "preferences:write" in SCOPES
    assert key_file.read_text().strip() == first
    assert mode(key_file) == 0o600

    key_file.chmod(0o644)
    again, reused = development_key(sessions, key_file)
    assert (again, reused) == (first, True)
    assert mode(key_file) == 0o600


def test_a_revoked_key_is_replaced(tmp_path: Path) -> None:
    sessions = database(tmp_path)
    key_file = tmp_path / "dev-api-key"
    first, _ = development_key(sessions, key_file)
    with sessions.begin() as session:
        caller = authenticate(session, first)
        assert caller is not None
        revoke(session, caller.key_id)
    second, reused = development_key(sessions, key_file)
    assert not reused and second != first
    assert key_file.read_text().strip() == second
    assert scopes_of(sessions, second) == SCOPES


def test_a_new_database_gets_a_new_key(tmp_path: Path) -> None:
    key_file = tmp_path / "dev-api-key"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = development_key(database(tmp_path / "a"), key_file)
    other = database(tmp_path / "b")
    second, reused = development_key(other, key_file)
    assert not reused and second != first
    assert scopes_of(other, second) == SCOPES


def test_a_stored_key_missing_a_scope_is_revoked_and_replaced(tmp_path: Path) -> None:
    sessions = database(tmp_path)
    key_file = tmp_path / "dev-api-key"
    with sessions.begin() as session:
        _, narrow = create_key(session, "make run", ("notifications:send", "users:read"))
    key_file.write_text(narrow + "\n")
    wide, reused = development_key(sessions, key_file)
    assert not reused
    assert scopes_of(sessions, narrow) is None  # revoked
    assert scopes_of(sessions, wide) == SCOPES


def test_an_unreadable_key_file_is_replaced(tmp_path: Path) -> None:
    sessions = database(tmp_path)
    key_file = tmp_path / "dev-api-key"
    key_file.write_bytes(b"\xff\xfe not a key")
    secret, reused = development_key(sessions, key_file)
    assert not reused and scopes_of(sessions, secret) == SCOPES


# --- notify keys create --------------------------------------------------------------------------


def test_an_unknown_scope_is_one_line_listing_the_valid_ones(tmp_path: Path) -> None:
    database(tmp_path)
    env = {"NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite'}"}
    result = CliRunner().invoke(
        app, ["keys", "create", "--name", "billing", "--scope", "preferences"], env=env
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("notify: unknown scope preferences; the scopes are ")
    for scope in SCOPES:
        assert scope in lines[0]


def test_keys_create_help_lists_the_scopes() -> None:
    result = CliRunner().invoke(app, ["keys", "create", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for scope in SCOPES:
        assert scope in result.output


def test_a_valid_scope_makes_a_key(tmp_path: Path) -> None:
    sessions = database(tmp_path)
    env = {"NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite'}"}
    result = CliRunner().invoke(
        app,
        ["keys", "create", "--name", "prefs", "--scope", "preferences:read"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert scopes_of(sessions, secret) == {"preferences:read"}
