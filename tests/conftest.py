"""Fixtures shared by every test folder (one PostgreSQL database, one worker per run)."""

pytest_plugins = ["tests.support.stack"]
