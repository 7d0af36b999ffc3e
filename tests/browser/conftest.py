"""Fixtures for browser tests that share nothing with other runs: Debian's Chromium, and a
`notify web` of the test's own (``own_stack``: SQLite, the SQL broker and a mailbox folder in a
temporary folder), stopped by its process id."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from tests.support.services import WebProcess
from tests.support.stack import OwnStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def tab(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (its own cookies and tabs), closed after the test."""
    context = chromium.new_context()
    yield context
    context.close()


@pytest.fixture
def own_web(own_stack: OwnStack) -> Iterator[WebProcess]:
    """`notify web` on ``own_stack.port``, which ``NOTIFY_PUBLIC_URL`` names, so links in
    emails composed with ``own_stack.settings`` lead to it; /dev/mailbox is on."""
    log = own_stack.settings.smtp.mailbox.parent / "web.log"
    server = WebProcess(own_stack.env, log)
    server.port = own_stack.port
    server.start()
    try:
        yield server
    finally:
        server.stop()
