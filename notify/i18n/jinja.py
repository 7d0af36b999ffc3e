"""Languages in Jinja: gettext's ``{% trans %}`` from a shipped catalogue, and filters that
write dates, times, numbers and lists for the environment's locale.

One environment serves one locale (:func:`localise` is called once, when it is built). The
time zone is the person's, read at render time from the ``notify`` variable's ``time_zone``
(emails) or the top-level ``time_zone`` (pages); UTC when neither is set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from babel.support import Translations
from jinja2 import Environment, nodes, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from notify.i18n import formatting
from notify.i18n.catalogues import translations

SYSTEM_VARIABLE = "notify"  # what the email layout adds; producers cannot set it
LOCALE_FILTERS = ("translate", "format_datetime", "format_date", "format_number", "format_list")
I18N_EXTENSION = "jinja2.ext.i18n"


def _time_zone(context: Context) -> str | None:
    system = context.get(SYSTEM_VARIABLE)
    if isinstance(system, Mapping) and system.get("time_zone"):
        return str(system["time_zone"])
    value = context.get("time_zone")
    return str(value) if value else None


def localise(environment: Environment, locale: str) -> Environment:
    """Install ``locale``'s catalogue and the locale filters into ``environment`` (built with
    :data:`I18N_EXTENSION`); returns it. Whitespace inside ``{% trans %}`` is collapsed, and
    ``lang`` is the locale, for ``<html lang>``."""
    catalogue = translations(locale)
    environment.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
    environment.policies["ext.i18n.trimmed"] = True
    if isinstance(environment.autoescape, bool):
        # The same "new style" gettext Jinja installs (format with the keyword values, Markup
        # that escapes them when the environment escapes), without its per-call context
        # lookups: one environment has one autoescape setting, known here. A third of an
        # email's render time went to those lookups.
        environment.globals.update(_fast_gettext(catalogue, escape=environment.autoescape))

    @pass_context
    def format_datetime(context: Context, value: Any) -> str:
        return formatting.moment(value, locale, _time_zone(context))

    @pass_context
    def format_date(context: Context, value: Any) -> str:
        return formatting.day(value, locale, _time_zone(context))

    def format_number(value: Any) -> str:
        return formatting.number(value, locale)

    def format_list(items: Any) -> str:
        return formatting.listing(list(items), locale)

    environment.filters.update(
        translate=translations(locale).gettext,  # a text held in a variable (a category's name)
        format_datetime=format_datetime,
        format_date=format_date,
        format_number=format_number,
        format_list=format_list,
    )
    environment.globals["lang"] = locale
    return environment


def _fast_gettext(catalogue: Translations, *, escape: bool) -> dict[str, Callable[..., str]]:
    lookup, plural = catalogue.gettext, catalogue.ngettext
    wrap: Callable[[str], str] = Markup if escape else str

    def gettext(message: str, **values: Any) -> str:
        return wrap(lookup(message)) % values

    def ngettext(singular: str, many: str, count: int, **values: Any) -> str:
        return wrap(plural(singular, many, count)) % {"num": count, **values}

    return {"gettext": gettext, "_": gettext, "ngettext": ngettext}


def reads_time_zone(sources: list[str]) -> bool:
    """Whether Jinja ``sources`` write a date or time (so the person's zone changes them)."""
    parser = Environment(extensions=[I18N_EXTENSION])  # noqa: S701 (parsed only, never rendered)
    return any(
        node.name in ("format_datetime", "format_date")
        for source in sources
        for node in parser.parse(source).find_all(nodes.Filter)
    )
