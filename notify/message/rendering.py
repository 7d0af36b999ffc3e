"""Renders a template into subject, text and HTML. Pure: no database, Celery or web imports.

HTML renders with autoescaping, subject and text without; every variable must be defined
(``StrictUndefined``). CSS is inlined into the HTML *source* once, when Jinja first loads a file,
so a message costs only the Jinja render.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    pass_context,
)
from jinja2.runtime import Context
from markupsafe import Markup

from notify.i18n.jinja import I18N_EXTENSION, localise
from notify.i18n.locales import FALLBACK_LOCALE
from notify.message import markdown
from notify.message.personal import RECIPIENT_VARIABLE, PersonalFields
from notify.message.templates import EMAIL_TEMPLATES, SYSTEM_VARIABLE, TEMPLATE_FILTERS

STYLESHEET = "_layout/email.css"
# Whitespace but the no-break spaces, which a translation sets on purpose (French before ":").
_WHITESPACE = re.compile(r"[^\S\u00a0\u2007\u202f]+")


@dataclass(frozen=True)
class LayoutContext:
    """What the layout needs besides the producer's data; never the address or a secret.

    ``locale`` is a shipped locale (:mod:`notify.i18n.locales`): the language of everything
    notify itself writes in the email. ``category_label`` is the category as it reads inside a
    sentence in that language, and ``why_always_on`` is in that language too. ``time_zone`` is
    the person's IANA zone, for dates and times (UTC when unknown)."""

    company_name: str
    postal_address: str
    category_label: str
    essential: bool
    why_always_on: str
    preferences_url: str
    unsubscribe_url: str | None
    locale: str = FALLBACK_LOCALE
    time_zone: str | None = None

    def __post_init__(self) -> None:
        if not self.essential and not self.unsubscribe_url:
            raise ValueError("a non-essential email needs its unsubscribe link")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class CssInliningLoader(BaseLoader):
    """Loads from disk and inlines the shared stylesheet into every ``.html`` source."""

    def __init__(self, root: Path) -> None:
        self._files = FileSystemLoader(str(root))
        self._css = (root / STYLESHEET).read_text(encoding="utf-8")

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self._files.get_source(environment, template)
        if not template.endswith(".html"):
            return source, filename, uptodate
        if source.lstrip().lower().startswith("<!doctype"):
            inliner = css_inline.CSSInliner(extra_css=self._css, load_remote_stylesheets=False)
            return inliner.inline(source), filename, uptodate
        return css_inline.inline_fragment(source, self._css), filename, uptodate


@pass_context
def _personalised(context: Context, source: str) -> str:
    """A personalised value (subject, preheader) with the person's fields filled in."""
    return one_line(markdown.personalised(str(source), context[RECIPIENT_VARIABLE]))


@pass_context
def _markdown_text(context: Context, source: str) -> str:
    return markdown.personalised(str(source), context[RECIPIENT_VARIABLE]).strip()


def _markdown_html_filter(css: str) -> Callable[[Context, str], Markup]:
    @pass_context
    def markdown_html(context: Context, source: str) -> Markup:
        """Sanitised HTML, then the layout's stylesheet inlined into it (author styles were
        removed by the sanitiser)."""
        html = markdown.safe_html(
            markdown.personalised(str(source), context[RECIPIENT_VARIABLE], markdown=True)
        )
        return Markup(css_inline.inline_fragment(html, css))  # noqa: S704 (sanitised above)

    return markdown_html


@cache
def _environments(root: Path, locale: str) -> tuple[Environment, Environment]:
    """The HTML and the text environment for one shipped locale (built once each)."""
    html = Environment(
        loader=CssInliningLoader(root),
        autoescape=True,
        undefined=StrictUndefined,
        auto_reload=False,
        extensions=[I18N_EXTENSION],
    )
    text = Environment(
        loader=FileSystemLoader(str(root)),
        autoescape=False,  # noqa: S701 (subject and text/plain must not be HTML-escaped)
        undefined=StrictUndefined,
        auto_reload=False,
        keep_trailing_newline=False,
        extensions=[I18N_EXTENSION],
    )
    localise(html, locale)
    localise(text, locale)
    css = (root / STYLESHEET).read_text(encoding="utf-8")
    filters = dict(
        zip(
            TEMPLATE_FILTERS,
            (_personalised, _markdown_text, _markdown_html_filter(css)),
            strict=True,
        )
    )
    html.filters.update(filters)
    text.filters.update(filters)
    return html, text


def one_line(value: str) -> str:
    """Collapse every run of whitespace (newlines included, no-break spaces kept) to one space,
    and strip."""
    return _WHITESPACE.sub(" ", value).strip()


def render(
    name: str,
    data: Mapping[str, Any],
    layout: LayoutContext,
    root: Path = EMAIL_TEMPLATES,
    *,
    personal: PersonalFields | None = None,
) -> RenderedEmail:
    """Render template ``name``; raises ``jinja2.UndefinedError`` if a data variable is
    missing. The person's own fields are ``recipient`` (:mod:`notify.message.personal`): one
    they lack renders as the template's fallback, never an error. Everything notify writes
    itself is in ``layout.locale``; dates and times are in ``layout.time_zone``."""
    if not isinstance(name, str) or "/" in name or name.startswith(("_", ".")):
        raise TemplateNotFound(str(name))
    html_env, text_env = _environments(root, layout.locale)
    context: dict[str, Any] = dict(data)
    context[RECIPIENT_VARIABLE] = (personal or PersonalFields()).for_template()
    context[SYSTEM_VARIABLE] = {**layout.__dict__, "subject": ""}
    subject = one_line(text_env.get_template(f"{name}/subject.txt").render(context))
    context[SYSTEM_VARIABLE] = {**layout.__dict__, "subject": subject}
    text = text_env.get_template(f"{name}/body.txt").render(context)
    html = html_env.get_template(f"{name}/body.html").render(context)
    return RenderedEmail(subject=subject, text=text.strip() + "\n", html=html)
