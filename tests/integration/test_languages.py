"""Every email and page in the person's language, on the real stack: the API, PostgreSQL, Redis,
a Celery worker process and the SMTP server on loopback, whose received bytes are parsed here."""

from __future__ import annotations

import email
import re
import uuid
from email import policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from notify.i18n.locales import SHIPPED_LOCALES
from notify.message.links import preferences_url, unsubscribe_url
from notify.message.templates import catalogue
from notify.models import ConsentEvent, Recipient
from tests.support.services import wait_until
from tests.support.stack import Stack, sample_data

pytestmark = pytest.mark.integration

# Each shipped language as a person's stored locale (with a region, to walk the chain), a time
# zone, how the sample security alert's moment (2026-11-27T09:14:00Z) reads there, and a line
# of the layout that only that language has.
PEOPLE = {
    "en": (
        "en-US",
        "America/New_York",
        "When: November 27, 2026, 4:14\u202fAM Eastern Standard Time",
    ),
    "de": ("de-AT", "Europe/Vienna", "Wann: 27. November 2026, 10:14 Mitteleuropäische Normalzeit"),
    "fr": (
        "fr-CA",
        "America/Montreal",
        "Quand\u00a0: 27 novembre 2026, 04:14 heure normale de l’Est",
    ),
}
FOOTER_WORDS = {"en": "email preferences", "de": "E-Mail-Einstellungen", "fr": "préférences e-mail"}
MARKDOWN_TRANSLATIONS = {
    "de": {"subject": "Der dunkle Modus ist da", "body": "# Dunkler Modus\n\nHallo!"},
    "fr": {"subject": "Le mode sombre est là", "body": "# Mode sombre\n\nBonjour\u00a0!"},
}


def parse(raw: bytes) -> EmailMessage:
    return cast(EmailMessage, email.message_from_bytes(raw, policy=policy.default))


def part(message: EmailMessage, kind: str) -> str:
    return cast(EmailMessage, message.get_body((kind,))).get_content()


def new_person(client: TestClient, auth: dict[str, str], locale: str | None, zone: str) -> str:
    user_id = f"lang-{uuid.uuid4().hex[:12]}"
    body: dict[str, Any] = {"email": f"{user_id}@example.com", "timezone": zone}
    if locale:
        body["locale"] = locale
    answer = client.put(f"/v1/users/{user_id}", json=body, headers=auth)
    assert answer.status_code == 201, answer.text
    return user_id


def data_for(template: str) -> dict[str, Any]:
    data = sample_data(template)
    if template == "markdown_update":
        data["translations"] = MARKDOWN_TRANSLATIONS
    return data


def test_one_email_per_template_per_shipped_language_reaches_the_smtp_server_in_it(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    sent: dict[tuple[str, str], str] = {}
    for language, (locale, zone, _) in PEOPLE.items():
        user_id = new_person(client, auth, locale, zone)
        for template in sorted(catalogue()):
            body = {"template": template, "user_id": user_id, "data": data_for(template)}
            answer = client.post("/v1/notifications", json=body, headers=auth)
            assert answer.status_code == 202, answer.text
            sent[(language, template)] = f"{user_id}@example.com"
    for language in PEOPLE:
        address = sent[(language, "security_alert")]  # one person per language
        wait_until(
            lambda address=address: (
                len(stack.smtp.handler.messages_to(address)) >= len(catalogue())
            ),
            60,
            f"every template in {language}",
        )
    for language, (_, _, local_time) in PEOPLE.items():
        address = sent[(language, "security_alert")]
        raws = [m.content for m in stack.smtp.handler.messages_to(address)]
        assert len(raws) == len(catalogue())
        by_language = {parse(raw)["Content-Language"] for raw in raws}
        assert by_language == {language}, by_language  # every template, one language
        for raw in raws:
            message = parse(raw)
            head = raw.split(b"\r\n\r\n", 1)[0]
            text, html = part(message, "plain"), part(message, "html")
            assert f'<html lang="{language}">' in html
            assert FOOTER_WORDS[language] in html
            for other in set(SHIPPED_LOCALES) - {language}:
                assert FOOTER_WORDS[other] not in html
            subject = str(message["Subject"])
            if not subject.isascii():
                # RFC 2047 on the wire, exact text once decoded
                assert re.search(rb"^Subject: =\?utf-8\?[qb]\?", head, re.M | re.I), head
            if message["List-Unsubscribe"] is not None:
                lines = [line for line in head.split(b"\r\n") if line.startswith(b"List-Unsub")]
                assert all(b"=?" not in line for line in lines)
                link = str(message["List-Unsubscribe"]).strip("<>")
                assert f"List-Unsubscribe: <{link}>".encode() in lines
                assert link in text
            if "security" in str(message["From"]):
                assert local_time in text and local_time in html
                prefix = {"en": "Security alert:", "de": "Sicherheitswarnung:", "fr": "Alerte"}
                assert subject.startswith(prefix[language])
        markdown = [  # the product update's sample has the same subject, and a button
            parse(raw)
            for raw in raws
            if parse(raw)["Subject"] in _markdown_subjects()
            and "Try dark mode" not in part(parse(raw), "plain")
        ]
        assert len(markdown) == 1
        expected = {"en": "Dark mode is here"} | {
            key: value["subject"] for key, value in MARKDOWN_TRANSLATIONS.items()
        }
        assert markdown[0]["Subject"] == expected[language]


def _markdown_subjects() -> set[str]:
    return {"Dark mode is here"} | {value["subject"] for value in MARKDOWN_TRANSLATIONS.values()}


def test_a_campaign_in_three_languages_sends_each_person_their_own(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    people = {
        "de": new_person(client, auth, "de-CH", "Europe/Zurich"),
        "fr": new_person(client, auth, "fr", "Europe/Paris"),
        "en": new_person(client, auth, "pt-BR", "America/Sao_Paulo"),  # not shipped: English
    }
    data = {**sample_data("markdown_update"), "translations": MARKDOWN_TRANSLATIONS}
    body = {
        "name": "dark mode, three languages",
        "template": "markdown_update",
        "data": data,
        "audience": {"user_ids": list(people.values())},
    }
    created = client.post("/v1/campaigns", json=body, headers=auth)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    preview = client.post(
        f"/v1/campaigns/{campaign_id}/preview", json={"user_id": people["de"]}, headers=auth
    )
    assert preview.status_code == 200 and preview.json()["subject"] == "Der dunkle Modus ist da"
    assert client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth).status_code == 200
    wait_until(
        lambda: (
            client.get(f"/v1/campaigns/{campaign_id}", headers=auth).json()["status"] == "completed"
        ),
        90,
        "the campaign to complete",
    )
    for language, user_id in people.items():
        received = stack.smtp.handler.messages_to(f"{user_id}@example.com")
        assert len(received) == 1
        message = parse(received[0].content)
        assert message["Content-Language"] == language
        assert FOOTER_WORDS[language] in part(message, "html")
    german = parse(stack.smtp.handler.messages_to(f"{people['de']}@example.com")[0].content)
    assert "Dunkler Modus" in part(german, "html") and "Hallo!" in part(german, "plain")


def public_id_of(stack: Stack, user_id: str) -> str:
    with stack.sessions() as session:
        return str(session.scalar(select(Recipient.public_id).where(Recipient.user_id == user_id)))


@pytest.mark.parametrize(
    ("locale", "accept", "expected"),
    [
        ("de-AT", "fr", "de"),  # the person's locale wins over the browser's
        (None, "fr-CH, en;q=0.5", "fr"),  # no locale stored: the browser's
        (None, "ja", "en"),  # neither: the default
        ("pt-BR", "de", "en"),  # a stored locale that is not shipped: its chain, not the browser
    ],
)
def test_the_public_pages_take_the_persons_language_then_the_browsers(
    stack: Stack,
    client: TestClient,
    auth: dict[str, str],
    locale: str | None,
    accept: str,
    expected: str,
) -> None:
    user_id = new_person(client, auth, locale, "UTC")
    public_id = public_id_of(stack, user_id)
    headers = {"Accept-Language": accept}
    pages = [
        unsubscribe_url(stack.settings, public_id, "product_updates"),
        preferences_url(stack.settings, public_id),
    ]
    for url in pages:
        answer = client.get(url.removeprefix(stack.settings.public_url), headers=headers)
        assert answer.status_code == 200
        assert answer.headers["content-language"] == expected
        assert f'<html lang="{expected}">' in answer.text
    invalid = client.get("/u/not-a-token", headers=headers)
    assert invalid.status_code == 404
    # A page that names nobody follows the browser alone.
    browser = {"fr": "fr", "fr-CH, en;q=0.5": "fr", "ja": "en", "de": "de"}[accept]
    assert invalid.headers["content-language"] == browser


def test_the_preference_centre_changes_the_language_and_logs_it_as_a_choice(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = new_person(client, auth, None, "UTC")
    path = preferences_url(stack.settings, public_id_of(stack, user_id)).removeprefix(
        stack.settings.public_url
    )
    shown = client.get(path, headers={"Accept-Language": "en"})
    assert 'value="de" lang="de">Deutsch' in shown.text
    saved = client.post(
        path,
        data={"choices": "1", "category": "product_updates", "language": "de"},
        headers={"Accept-Language": "en"},
    )
    assert saved.status_code == 200
    assert saved.headers["content-language"] == "de"
    assert "Ihre E-Mail-Einstellungen" in saved.text
    assert client.get(f"/v1/users/{user_id}", headers=auth).json()["locale"] == "de"
    with stack.sessions() as session:
        recipient_id = session.scalar(select(Recipient.id).where(Recipient.user_id == user_id))
        events = session.scalars(
            select(ConsentEvent).where(ConsentEvent.recipient_id == recipient_id)
        ).all()
    changes = [(event.action, event.source, event.detail) for event in events]
    assert ("language:de", "preference_centre", None) in changes
    # Saving again in German changes nothing and logs nothing more; an unknown language is ignored.
    for language in ("de", "xx", ""):
        client.post(
            path, data={"choices": "1", "category": "product_updates", "language": language}
        )
    with stack.sessions() as session:
        count = len(
            session.scalars(
                select(ConsentEvent).where(
                    ConsentEvent.recipient_id == recipient_id,
                    ConsentEvent.action.like("language:%"),
                )
            ).all()
        )
    assert count == 1
    # The next email is in German.
    answer = client.post(
        "/v1/notifications",
        json={"template": "admin_notice", "user_id": user_id, "data": sample_data("admin_notice")},
        headers=auth,
    )
    assert answer.status_code == 202
    received = wait_until(
        lambda: stack.smtp.handler.messages_to(f"{user_id}@example.com"), 60, "the notice"
    )
    assert parse(received[0].content)["Content-Language"] == "de"


def test_saving_the_page_shown_in_the_browsers_language_confirms_it_for_emails_too(
    stack: Stack, client: TestClient, auth: dict[str, str]
) -> None:
    user_id = new_person(client, auth, None, "UTC")
    path = preferences_url(stack.settings, public_id_of(stack, user_id)).removeprefix(
        stack.settings.public_url
    )
    shown = client.get(path, headers={"Accept-Language": "fr-FR"})
    assert 'value="fr" lang="fr" selected>' in shown.text
    form = {"choices": "1", "category": "product_updates", "language": "fr"}
    assert client.post(path, data=form, headers={"Accept-Language": "fr-FR"}).status_code == 200
    assert client.get(f"/v1/users/{user_id}", headers=auth).json()["locale"] == "fr"
    # A stored regional locale is kept when the page's own language is saved as it was.
    body = {"email": f"{user_id}@example.com", "locale": "fr-CA"}
    assert client.put(f"/v1/users/{user_id}", json=body, headers=auth).status_code == 200
    client.post(path, data=form)
    assert client.get(f"/v1/users/{user_id}", headers=auth).json()["locale"] == "fr-CA"
