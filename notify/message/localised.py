"""Which language one message is written in, and its content in that language. Pure.

notify's own templates are translated in the catalogues, so any shipped locale is available
for them. A template whose content the producer writes (``personalised_variables``, the
Markdown campaign) may also carry that content in more languages:

``language``
    the language the top-level values are written in (a tag; the service's default locale
    when left out);
``translations``
    ``{"de": {"subject": …, "body": …}, "fr-CA": {…}}``: the same variables in other languages.

The person's locale picks among those along its chain (``de-AT`` → ``de`` → the default →
English, :func:`notify.i18n.locales.pick`); notify's own text (layout, footer) then follows
the content's language, so a message is written in one language throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notify.i18n.locales import pick, shipped
from notify.message.templates import LANGUAGE_VARIABLE, TRANSLATIONS_VARIABLE, EmailTemplate

MAX_TRANSLATIONS = 50
__all__ = ["LANGUAGE_VARIABLE", "MAX_TRANSLATIONS", "TRANSLATIONS_VARIABLE", "Language", "choose"]


@dataclass(frozen=True)
class Language:
    """The language chosen for one message: ``locale`` (shipped) for notify's own text,
    ``content`` for the ``Content-Language`` header, and the data to render with."""

    locale: str
    content: str
    data: Mapping[str, Any]


def carries_translations(template: EmailTemplate) -> bool:
    return bool(template.personalised_variables)


def choose(
    template: EmailTemplate, data: Mapping[str, Any], person_locale: str | None, default: str
) -> Language:
    """The language of a message of ``template`` with ``data`` for a person whose stored locale
    is ``person_locale`` (None when unknown), and the data to render in it."""
    translations = data.get(TRANSLATIONS_VARIABLE) if carries_translations(template) else None
    if not isinstance(translations, Mapping) or not translations:
        locale = shipped(person_locale, default)
        if carries_translations(template):
            base = str(data.get(LANGUAGE_VARIABLE) or default)
            content = pick(person_locale, [base], default)
            return Language(shipped(content, default), content, data)
        return Language(locale, locale, data)
    base = str(data.get(LANGUAGE_VARIABLE) or default)
    available = [base, *(str(tag) for tag in translations)]
    content = pick(person_locale, available, default)
    chosen = dict(data)
    if content != base:
        chosen.update(translations[content])
        for name in template.personalised_variables:  # a variable the translation leaves out
            if name not in translations[content] and name not in template.variables:
                chosen.pop(name, None)
    return Language(shipped(content, default), content, chosen)
