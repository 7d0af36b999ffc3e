"""Languages: the locale chain, the catalogues, and each email in each shipped language."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from notify import crypto
from notify.config import Settings
from notify.i18n import formatting
from notify.i18n.catalogues import TRANSLATIONS_ROOT, compiled_path, translations
from notify.i18n.locales import SHIPPED_LOCALES, accepted, chain, negotiated, pick, shipped
from notify.message.composing import BatchComposer, compose
from notify.message.jobs import Claimed
from notify.message.localised import choose
from notify.message.template_data import InvalidFieldError, check_data
from notify.message.templates import catalogue, get_template

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)s")
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
# Text of the layout in each language: proof the footer is in the message's language. The
# text part's line for essential mail, its line for the rest, and the HTML link's words.
FOOTER = {
    "en": (
        "Choose which other emails you get",
        "You are getting this because",
        "email preferences",
    ),
    "de": (
        "Legen Sie fest, welche anderen E-Mails Sie erhalten",
        "Sie erhalten diese E-Mail",
        "E-Mail-Einstellungen",
    ),
    "fr": (
        "Choisissez les autres e-mails que vous souhaitez recevoir",
        "Vous recevez cet e-mail",
        "préférences e-mail",
    ),
}


# --- the locale chain ------------------------------------------------------------------------


def test_the_chain_drops_one_subtag_at_a_time_then_follows_the_default_then_english() -> None:
    assert chain("de-AT", "fr") == ("de-AT", "de", "fr", "en")
    assert chain("zh_Hant_TW") == ("zh-Hant-TW", "zh-Hant", "zh", "en")
    assert chain("en-GB", "en") == ("en-GB", "en")
    assert chain(None, "fr-CA") == ("fr-CA", "fr", "en")
    assert chain("", "en") == ("en",)


@pytest.mark.parametrize(
    ("tag", "default", "expected"),
    [
        ("de-AT", "en", "de"),
        ("DE-at", "en", "de"),
        ("fr-CA", "de", "fr"),
        ("pt-BR", "fr", "fr"),  # not shipped: the default
        ("pt-BR", "en", "en"),
        ("pt-BR", "es", "en"),  # neither shipped: English
        (None, "de", "de"),
        ("en-US", "de", "en"),
    ],
)
def test_a_person_gets_the_first_shipped_locale_of_their_chain(
    tag: str | None, default: str, expected: str
) -> None:
    assert shipped(tag, default) == expected


def test_pick_keeps_the_spelling_of_what_is_available() -> None:
    assert pick("de-at", ["en", "de-AT", "de"], "en") == "de-AT"
    assert pick("de-CH", ["en", "de-AT", "de"], "en") == "de"
    assert pick("ja", ["fr", "de"], "en") == "fr"  # nothing of the chain: the first available


def test_accept_language_is_read_by_quality_then_order() -> None:
    assert accepted("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5") == ("fr-CH", "fr", "en", "de")
    assert accepted("de;q=0.5, fr") == ("fr", "de")
    assert accepted("en;q=0, de") == ("de",)
    assert accepted("de;q=x, ;q=1, <script>") == ()
    assert accepted(None) == ()
    assert negotiated("pt-BR, de-AT;q=0.8", "en") == "de"
    assert negotiated("ja, ko", "fr") == "fr"
    assert negotiated(None, "de") == "de"


# --- the catalogues --------------------------------------------------------------------------


def read_catalogue(path: Path) -> Any:
    with path.open("rb") as source:
        return read_po(source)


def ids(messages: Any) -> set[str]:
    return {message.id for message in messages if message.id}


def test_the_template_holds_every_text_the_sources_mark_and_no_other() -> None:
    """A new text in a template or in Python fails here until ``make i18n-update`` ran."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found = {
        message
        for _, _, message, _, _ in extract_from_dir(
            str(ROOT),
            method_map,
            options_map,
            directory_filter=lambda path: not Path(path).name.startswith((".", "__")),
        )
        if isinstance(message, str)
    }
    template = ids(read_catalogue(TRANSLATIONS_ROOT / "messages.pot"))
    assert found, "nothing was extracted: babel.cfg does not reach the templates"
    assert found == template


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
def test_every_shipped_catalogue_is_complete_without_fuzzy_or_obsolete_entries(
    locale: str,
) -> None:
    template = ids(read_catalogue(TRANSLATIONS_ROOT / "messages.pot"))
    catalogue_ = read_catalogue(TRANSLATIONS_ROOT / locale / "LC_MESSAGES" / "messages.po")
    assert ids(catalogue_) == template
    assert not catalogue_.obsolete, sorted(catalogue_.obsolete)
    for message in catalogue_:
        if not message.id:
            continue
        assert message.string, f"{locale} lacks a translation of {message.id!r}"
        assert not message.fuzzy, f"{locale}: {message.id!r} is fuzzy"
        assert sorted(PLACEHOLDER.findall(message.id)) == sorted(
            PLACEHOLDER.findall(message.string)
        ), f"{locale}: {message.id!r} and its translation name different values"
        assert "%" not in PLACEHOLDER.sub("", message.string), (
            f"{locale}: a bare % in {message.id!r}"
        )


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
def test_the_compiled_catalogue_is_the_source_catalogue(locale: str) -> None:
    """The ``.mo`` is built from the ``.po`` (make compiles it): a stale one fails here."""
    assert compiled_path(locale).is_file()
    source = read_catalogue(TRANSLATIONS_ROOT / locale / "LC_MESSAGES" / "messages.po")
    compiled = translations(locale)
    for message in source:
        if message.id:
            assert compiled.gettext(message.id) == message.string, message.id


# --- dates, numbers and lists ------------------------------------------------------------------


def test_a_moment_is_written_in_the_persons_language_and_zone_with_the_zones_name() -> None:
    moment = "2026-11-27T09:14:00Z"
    assert formatting.moment(moment, "en", "America/New_York") == (
        "November 27, 2026, 4:14\u202fAM Eastern Standard Time"
    )
    assert formatting.moment(moment, "de", "Europe/Berlin") == (
        "27. November 2026, 10:14 Mitteleuropäische Normalzeit"
    )
    assert formatting.moment("2026-07-01T12:00:00+02:00", "fr", "Europe/Paris") == (
        "1 juillet 2026, 12:00 heure d’été d’Europe centrale"
    )
    assert formatting.moment("2026-11-27T09:14:00", "en", None).endswith(
        "Coordinated Universal Time"
    )
    assert formatting.moment("yesterday at noon", "de", "Europe/Berlin") == "yesterday at noon"


def test_numbers_dates_and_lists_follow_the_locale() -> None:
    assert formatting.number(1234567.5, "en") == "1,234,567.5"
    assert formatting.number(1234567.5, "de") == "1.234.567,5"
    assert formatting.number("1234", "fr") == "1\u202f234"
    assert formatting.number("many", "fr") == "many"
    assert formatting.day("2026-11-27", "de", None) == "27. November 2026"
    assert formatting.day("2026-11-27T23:30:00Z", "fr", "Asia/Tokyo") == "28 novembre 2026"
    assert formatting.listing(["a", "b", "c"], "de") == "a, b und c"
    assert formatting.listing(["a", "b"], "fr") == "a et b"


# --- each email in each language ---------------------------------------------------------------


def person(template: str, locale: str | None, time_zone: str | None = None, **data: Any) -> Claimed:
    return Claimed(
        id="n-1",
        template=template,
        category=get_template(template).category.key,
        data={**get_template(template).sample, **data},
        attempts=1,
        message_id="<m-1@mail.example>",
        email="ada@example.com",
        recipient_id=7,
        recipient_public_id="pub-7",
        locale=locale,
        erased=False,
        time_zone=time_zone,
    )


def settings(**overrides: Any) -> Settings:
    crypto.install(["unit-test-key"])
    return Settings(public_url="https://notify.example.com", **overrides)


def sent(job: Claimed, **overrides: Any) -> tuple[bytes, EmailMessage]:
    raw = compose(settings(**overrides), job, now=NOW).as_bytes()
    return raw, cast(EmailMessage, email.message_from_bytes(raw, policy=policy.default))


def body(message: EmailMessage, part: str) -> str:
    return cast(EmailMessage, message.get_body((part,))).get_content()


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
@pytest.mark.parametrize("template", sorted(catalogue()))
def test_every_template_is_written_in_each_shipped_language(template: str, locale: str) -> None:
    raw, message = sent(person(template, f"{locale}-XX" if locale != "en" else "en-GB"))
    language = "en" if template == "markdown_update" else locale  # its sample is English only
    assert message["Content-Language"] == language
    text, html = body(message, "plain"), body(message, "html")
    essential = get_template(template).category.essential
    assert FOOTER[language][0 if essential else 1] in text
    assert FOOTER[language][2] in html
    assert f'<html lang="{language}">' in html
    for other in set(SHIPPED_LOCALES) - {language}:
        assert FOOTER[other][0] not in text and FOOTER[other][1] not in text
    # Headers that must stay one line, never encoded, are exactly as in English.
    for line in raw.split(b"\r\n"):
        if line.startswith((b"List-Unsubscribe", b"Content-Language")):
            assert b"=?" not in line
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_a_french_subject_is_rfc_2047_encoded_and_reads_back_exactly() -> None:
    raw, message = sent(person("security_alert", "fr"))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # the header block is 7-bit
    assert re.search(r"^Subject: =\?utf-8\?", head, re.M | re.I)
    assert message["Subject"] == "Alerte de sécurité\u00a0: New sign-in to your account"


def test_the_security_alert_says_when_in_the_persons_language_zone_and_words() -> None:
    _, german = sent(person("security_alert", "de-DE", "Europe/Berlin"))
    assert "Wann: 27. November 2026, 10:14 Mitteleuropäische Normalzeit" in body(german, "plain")
    _, american = sent(person("security_alert", "en-US", "America/Los_Angeles"))
    assert "When: November 27, 2026, 1:14\u202fAM Pacific Standard Time" in body(american, "plain")
    _, nowhere = sent(person("security_alert", None), default_timezone="Asia/Tokyo")
    assert "When: November 27, 2026, 6:14\u202fPM Japan Standard Time" in body(nowhere, "plain")


@pytest.mark.parametrize(
    ("locale", "default", "expected"),
    [("de-AT", "en", "de"), ("pt-BR", "fr", "fr"), ("pt-BR", "en", "en"), (None, "de", "de")],
)
def test_an_email_falls_back_along_the_chain(
    locale: str | None, default: str, expected: str
) -> None:
    _, message = sent(person("admin_notice", locale), default_locale=default)
    assert message["Content-Language"] == expected
    assert FOOTER[expected][0] in body(message, "plain")


# --- a campaign written in several languages ---------------------------------------------------

GERMAN = {"subject": "Der dunkle Modus ist da", "body": "Hallo {{ recipient.first_name }}!"}
FRENCH = {"subject": "Le mode sombre est là", "body": "Bonjour !", "preheader": "Essayez-le"}


def markdown(**extra: Any) -> dict[str, Any]:
    return {**get_template("markdown_update").sample, **extra}


@pytest.mark.parametrize(
    ("locale", "content", "subject"),
    [
        ("de-AT", "de", "Der dunkle Modus ist da"),
        ("fr-CA", "fr-CA", "Le mode sombre est là"),
        ("fr", "fr-CA", "Le mode sombre est là"),  # the first available of the chain's tags
        ("pt", "en", "Dark mode is here"),
        (None, "en", "Dark mode is here"),
    ],
)
def test_a_campaign_picks_its_body_along_the_chain_and_the_layout_follows(
    locale: str | None, content: str, subject: str
) -> None:
    translations_ = {"de": GERMAN, "fr-CA": FRENCH}
    language = choose(
        get_template("markdown_update"), markdown(translations=translations_), locale, "en"
    )
    assert language.content == content
    assert language.locale == shipped(content)
    _, message = sent(person("markdown_update", locale, translations=translations_))
    assert message["Subject"] == subject
    assert message["Content-Language"] == content


def test_a_translation_leaves_out_the_preheader_and_the_base_one_is_not_used() -> None:
    language = choose(
        get_template("markdown_update"), markdown(translations={"de": GERMAN}), "de", "en"
    )
    assert "preheader" not in language.data
    assert language.data["body"] == GERMAN["body"]


def test_a_campaign_written_in_german_with_an_english_translation() -> None:
    data = markdown(language="de", **GERMAN, translations={"en": {"subject": "Hi", "body": "Hi"}})
    data.pop("preheader")
    template = get_template("markdown_update")
    assert choose(template, data, "de-CH", "en").content == "de"
    assert choose(template, data, "ja", "en").content == "en"
    assert choose(template, data, "ja", "en").data["subject"] == "Hi"


@pytest.mark.parametrize(
    ("extra", "loc", "message"),
    [
        ({"translations": []}, ("data", "translations"), "must be an object"),
        ({"translations": {"xx_1": GERMAN}}, ("data", "translations", "xx_1"), "language tag"),
        ({"translations": {"de": "Hallo"}}, ("data", "translations", "de"), "must be an object"),
        (
            {"translations": {"de": {"body": "x"}}},
            ("data", "translations", "de", "subject"),
            "required in every translation",
        ),
        (
            {"translations": {"de": {**GERMAN, "cta_url": "x"}}},
            ("data", "translations", "de", "cta_url"),
            "not translatable",
        ),
        (
            {"translations": {"de": {**GERMAN, "body": "{{ recipient.first_name"}}},
            ("data", "translations", "de", "body"),
            "is not valid",
        ),
        (
            {"translations": {"de": {**GERMAN, "subject": "a\nBcc: x"}}},
            ("data", "translations", "de", "subject"),
            "line breaks",
        ),
        ({"language": "english!"}, ("data", "language"), "language tag"),
    ],
)
def test_a_bad_translation_is_refused_with_its_place(
    extra: dict[str, Any], loc: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InvalidFieldError) as raised:
        check_data(get_template("markdown_update"), markdown(**extra), 16_384)
    problems = {problem.loc: problem.msg for problem in raised.value.problems}
    assert loc in problems, problems
    assert message in problems[loc]


def test_a_template_translated_by_notify_refuses_translations_of_its_own() -> None:
    data = {**get_template("security_alert").sample, "translations": {"de": {}}}
    with pytest.raises(InvalidFieldError) as raised:
        check_data(get_template("security_alert"), data, 16_384)
    assert raised.value.loc == ("data", "translations")


def test_a_good_translation_passes() -> None:
    check_data(
        get_template("markdown_update"),
        markdown(language="en-GB", translations={"de": GERMAN, "fr-CA": FRENCH}),
        16_384,
    )


def test_the_batch_composer_renders_once_per_language_and_builds_what_compose_builds() -> None:
    configured = settings()
    data = markdown(translations={"de": GERMAN, "fr-CA": FRENCH})
    composer = BatchComposer(configured, "markdown_update", "product_updates", data)
    locales = ["de", "de-AT", "fr-CA", "fr", "en", None, "pt", "de-CH"] * 5
    for number, locale in enumerate(locales):
        job = person("markdown_update", locale, **{"translations": data["translations"]})
        job = Claimed(
            **{**job.__dict__, "id": f"n-{number}", "message_id": f"<{number}@m.example>"}
        )
        fast = email.message_from_bytes(composer.raw(job, now=NOW), policy=policy.default)
        full = email.message_from_bytes(
            compose(configured, job, now=NOW).as_bytes(), policy=policy.default
        )
        assert (
            fast["Subject"] == full["Subject"]
            and fast["Content-Language"] == full["Content-Language"]
        )
        for part in ("plain", "html"):
            strip = re.compile(r"/preferences/[A-Za-z0-9_.\-]+")
            assert strip.sub("", body(fast, part)) == strip.sub("", body(full, part))  # type: ignore[arg-type]
    assert {key[0] for key in composer._skeletons} == {"de", "fr-CA", "en"}
