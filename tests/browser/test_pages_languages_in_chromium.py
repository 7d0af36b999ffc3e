"""The unsubscribe and preference pages in each shipped language, in Debian's Chromium: the
language comes from the person the link names, then from the browser's own languages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, Page
from sqlalchemy import select

from notify.message.links import preferences_url, unsubscribe_url
from notify.models import Recipient
from tests.browser.checks import accessible_and_photographed
from tests.support.services import ROOT, WebProcess
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

SHOTS = ROOT / "var" / "screenshots" / "pages"

# What each language's pages say, as a person reads and presses them.
WORDS = {
    "en": {
        "unsubscribe": "Unsubscribe from product updates",
        "done": "You are unsubscribed",
        "undo": "Undo: subscribe me again",
        "again": "You are subscribed again",
        "preferences": "Your email preferences",
        "save": "Save my preferences",
        "saved": "Saved.",
        "language": "Language of our emails and pages",
    },
    "de": {
        "unsubscribe": "Produkt-Updates abbestellen",
        "done": "Abbestellung bestätigt",
        "undo": "Rückgängig machen: wieder abonnieren",
        "again": "Ihr Abonnement ist wieder aktiv",
        "preferences": "Ihre E-Mail-Einstellungen",
        "save": "Meine Einstellungen speichern",
        "saved": "Gespeichert.",
        "language": "Sprache unserer E-Mails und Seiten",
    },
    "fr": {
        "unsubscribe": "Se désabonner des mises à jour du produit",
        "done": "Votre désabonnement est confirmé",
        "undo": "Annuler : me réabonner",
        "again": "Votre abonnement est rétabli",
        "preferences": "Vos préférences e-mail",
        "save": "Enregistrer mes préférences",
        "saved": "Modifications enregistrées.",
        "language": "Langue de nos e-mails et de nos pages",
    },
}
STORED = {"en": "en-GB", "de": "de-AT", "fr": "fr-BE"}


@pytest.fixture
def japanese_browser(chromium: Browser) -> Iterator[BrowserContext]:
    """A browser whose own language notify does not ship: the person's locale must decide."""
    context = chromium.new_context(locale="ja-JP")
    yield context
    context.close()


def person(client: TestClient, auth: dict[str, str], stack: Stack, locale: str | None) -> str:
    user_id = f"u-lang-{uuid.uuid4().hex[:10]}"
    body = {"email": f"{user_id}@example.com", **({"locale": locale} if locale else {})}
    assert client.put(f"/v1/users/{user_id}", json=body, headers=auth).status_code == 201
    with stack.sessions() as session:
        return str(session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id)))


def local(url: str, server: WebProcess) -> str:
    return url.replace("https://notify.example.com", server.base_url)


def language_of(page: Page) -> str:
    return str(page.evaluate("document.documentElement.lang"))


def normalised(text: str) -> str:
    return text.replace("\u00a0", " ").replace("\u202f", " ")


@pytest.mark.parametrize("language", sorted(WORDS))
def test_the_unsubscribe_pages_speak_the_persons_language_and_their_buttons_work(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    web_server: WebProcess,
    japanese_browser: BrowserContext,
    language: str,
) -> None:
    words = WORDS[language]
    public_id = person(client, auth, stack, STORED[language])
    page = japanese_browser.new_page()
    page.goto(
        local(unsubscribe_url(stack.settings, public_id, "product_updates"), web_server),
        wait_until="networkidle",
    )
    assert language_of(page) == language
    accessible_and_photographed(page, f"unsubscribe-{language}", SHOTS)

    page.get_by_role("button", name=words["unsubscribe"]).click()
    page.wait_for_load_state("networkidle")
    assert language_of(page) == language
    assert words["done"] in normalised(page.content())

    page.get_by_role("button", name=words["undo"]).click()
    page.wait_for_load_state("networkidle")
    assert words["again"] in normalised(page.content())


@pytest.mark.parametrize("language", sorted(WORDS))
def test_the_preference_page_speaks_the_persons_language_and_changes_it(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    web_server: WebProcess,
    japanese_browser: BrowserContext,
    language: str,
) -> None:
    words = WORDS[language]
    public_id = person(client, auth, stack, STORED[language])
    page = japanese_browser.new_page()
    page.goto(
        local(preferences_url(stack.settings, public_id), web_server), wait_until="networkidle"
    )
    assert language_of(page) == language
    assert page.get_by_role("heading", level=1).inner_text() == words["preferences"]
    accessible_and_photographed(page, f"preferences-{language}", SHOTS)

    chosen = "fr" if language != "fr" else "de"
    page.get_by_label(words["language"]).select_option(chosen)
    page.get_by_role("button", name=words["save"]).click()
    page.wait_for_load_state("networkidle")
    assert language_of(page) == chosen
    assert WORDS[chosen]["saved"] in normalised(page.content())
    assert page.get_by_role("heading", level=1).inner_text() == WORDS[chosen]["preferences"]
    with stack.sessions() as session:
        stored = session.scalar(select(Recipient.locale).where(Recipient.public_id == public_id))
    assert stored == chosen


@pytest.mark.parametrize(("browser_locale", "language"), [("fr-FR", "fr"), ("de-CH", "de")])
def test_without_a_stored_locale_the_browsers_language_decides(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    web_server: WebProcess,
    chromium: Browser,
    browser_locale: str,
    language: str,
) -> None:
    public_id = person(client, auth, stack, None)
    context = chromium.new_context(locale=browser_locale)
    try:
        page = context.new_page()
        page.goto(
            local(unsubscribe_url(stack.settings, public_id, "product_updates"), web_server),
            wait_until="networkidle",
        )
        assert language_of(page) == language
        assert page.get_by_role("button", name=WORDS[language]["unsubscribe"]).is_visible()
        page.goto(f"{web_server.base_url}/u/not-a-valid-token", wait_until="networkidle")
        assert language_of(page) == language
    finally:
        context.close()
