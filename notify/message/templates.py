"""The catalogue of email templates on disk: ``templates/emails/<name>/`` with ``meta.toml``.

Pure: reads files, imports nothing from the database, Celery or the web layer.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, meta

from notify.categories import Category, get_category
from notify.i18n.jinja import I18N_EXTENSION, LOCALE_FILTERS, reads_time_zone
from notify.i18n.jinja import SYSTEM_VARIABLE as SYSTEM_VARIABLE
from notify.message.personal import fields_used, template_fields_used

TEMPLATES_ROOT = Path(__file__).resolve().parents[2] / "templates"
EMAIL_TEMPLATES = TEMPLATES_ROOT / "emails"
TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")


class TemplateNotFoundError(LookupError):
    """No template has this name. ``args[0]`` is the name asked for; ``known`` lists every
    template's name, sorted."""

    def __init__(self, name: str, known: tuple[str, ...] = ()) -> None:
        super().__init__(name)
        self.name = name
        self.known = known


@dataclass(frozen=True)
class EmailTemplate:
    """A template's metadata. ``variables`` must all be given by the producer; the person's
    own fields (``recipient.*``) come from their record and are never required."""

    name: str
    category: Category
    description: str
    variables: tuple[str, ...]
    url_variables: tuple[str, ...] = ()
    subject_variables: frozenset[str] = frozenset()
    sample: dict[str, Any] = field(default_factory=dict)
    # The person's own fields the template reads (notify.message.personal.fields_used)
    personal_fields: frozenset[str] = frozenset()
    optional_variables: tuple[str, ...] = ()  # may be given; the template does without them
    # Variables whose values are small templates of their own (notify.message.markdown)
    personalised_variables: tuple[str, ...] = ()
    # Whether it writes a date or time, which is then shown in the person's own time zone
    reads_time_zone: bool = False


# Filters that notify.message.rendering adds to Jinja's own, for personalised values.
TEMPLATE_FILTERS = ("personalised", "markdown_text", "markdown_html")
# Data a template with personalised variables may carry: its content in more languages
# (notify.message.localised).
TRANSLATIONS_VARIABLE = "translations"
LANGUAGE_VARIABLE = "language"
GETTEXT_NAMES = frozenset({"gettext", "ngettext", "pgettext", "npgettext", "_"})


def _sources(folder: Path) -> list[str]:
    return [(folder / name).read_text(encoding="utf-8") for name in TEMPLATE_FILES]


def _subject_variables(folder: Path) -> frozenset[str]:
    source = (folder / "subject.txt").read_text(encoding="utf-8")
    parser = Environment(extensions=[I18N_EXTENSION])  # noqa: S701 (parsed only, never rendered)
    parser.filters.update(dict.fromkeys((*TEMPLATE_FILTERS, *LOCALE_FILTERS), str))  # by name
    return frozenset(meta.find_undeclared_variables(parser.parse(source))) - GETTEXT_NAMES


def _load(folder: Path) -> EmailTemplate:
    raw = tomllib.loads((folder / "meta.toml").read_text(encoding="utf-8"))
    missing = [name for name in TEMPLATE_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"template {folder.name} lacks {', '.join(missing)}")
    return EmailTemplate(
        name=folder.name,
        category=get_category(raw["category"]),
        description=raw.get("description", ""),
        variables=tuple(raw.get("variables", [])),
        url_variables=tuple(raw.get("url_variables", [])),
        subject_variables=_subject_variables(folder),
        sample=dict(raw.get("sample", {})),
        personal_fields=template_fields_used(folder),
        optional_variables=tuple(raw.get("optional_variables", [])),
        personalised_variables=tuple(raw.get("personalised_variables", [])),
        reads_time_zone=reads_time_zone(_sources(folder)),
    )


@cache
def catalogue(root: Path = EMAIL_TEMPLATES) -> dict[str, EmailTemplate]:
    """Every template under ``root`` by name (folders starting with ``_`` are layouts)."""
    return {
        folder.name: _load(folder)
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith("_")
    }


def get_template(name: str) -> EmailTemplate:
    """The template called ``name``; raises :class:`TemplateNotFoundError` (which names the
    known ones) for any other name."""
    templates = catalogue()
    try:
        return templates[name]
    except KeyError:
        raise TemplateNotFoundError(name, tuple(sorted(templates))) from None


def personal_fields_for(template: EmailTemplate, data: Mapping[str, Any]) -> frozenset[str]:
    """The person's fields a message of ``template`` with ``data`` reads: the template's own,
    and those read by its personalised values (a Markdown body greeting by first name), in
    every language the data carries (``translations``, :mod:`notify.message.localised`)."""
    translations = data.get(TRANSLATIONS_VARIABLE)
    versions = [data, *(translations.values() if isinstance(translations, dict) else ())]
    sources = [
        value
        for version in versions
        if isinstance(version, Mapping)
        for name in template.personalised_variables
        if isinstance(value := version.get(name), str)
    ]
    return template.personal_fields | fields_used(sources) if sources else template.personal_fields
