"""Campaign content written by marketing: Markdown with the person's fields, made safe for email.
Pure: no database, Celery or web imports.

A personalised value (a subject, a preheader, a body) is a small template of its own: it may
read ``recipient.first_name``, ``recipient.attributes.plan`` and so on, with a fallback
(``{{ recipient.first_name | default("there", true) }}``), and nothing else. It runs in Jinja's
immutable sandbox, so marketing's text can never reach Python objects or change state.

The body becomes HTML with markdown-it-py (CommonMark; raw HTML in the source is shown as text,
not passed through), then goes through nh3 with an allowlist: text structure, links and images
only, every URL ``https://``, no ``style`` or ``class`` from the author, so the layout's own
styles (inlined afterwards) are the only ones. The text part is the Markdown source itself,
with the person's fields filled in: Markdown is written to be read as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

import nh3
from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markdown_it import MarkdownIt

from notify.message.personal import RECIPIENT_VARIABLE, PersonalFields

ALLOWED_TAGS = frozenset(
    {"p", "br", "h1", "h2", "h3", "h4", "strong", "em", "a", "ul", "ol", "li", "blockquote"}
    | {"code", "pre", "hr", "img"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~])")


def escape_markdown(value: Any) -> Any:
    """A person's value as literal text in Markdown (``*Ada*`` stays asterisks, not emphasis)."""
    if isinstance(value, str):
        return _MARKDOWN_SPECIAL.sub(r"\\\1", value)
    return value


@cache
def _sandbox(markdown: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=ChainableUndefined,  # a field the person lacks is empty, never an error
        autoescape=False,
        finalize=escape_markdown if markdown else None,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=256)  # bodies come from campaigns and producers: keep only recent ones
def _compiled(source: str, markdown: bool) -> Any:
    return _sandbox(markdown).from_string(source)


class PersonalisationError(TemplateError):
    """Personalised content that failed to render for one person (a division by zero, a call
    of a value): a compose error, recorded for that message like a broken template."""


# Who validation renders a personalised value for: nobody's fields, and a full set.
_TRIAL_PEOPLE = (
    PersonalFields(),
    PersonalFields("Ada", "Ada Lovelace", {"plan": "pro", "seats": 3, "beta": True}),
)


def template_problem(source: str) -> str | None:
    """Why ``source`` cannot be used as personalised content, or None: it must parse, and
    render both for a person with no fields and for one with all of them."""
    try:
        _compiled(source, False)
    except TemplateSyntaxError as error:
        return f"is not valid: {error.message} (line {error.lineno})"
    for person in _TRIAL_PEOPLE:
        try:
            personalised(source, person.for_template())
        except PersonalisationError as error:
            return f"cannot be rendered: {error.message}"
    return None


def personalised(source: str, recipient: Any, *, markdown: bool = False) -> str:
    """``source`` with the person's fields filled in (``recipient`` is the template view of
    :class:`notify.message.personal.PersonalFields`); with ``markdown``, each filled-in value
    is escaped so it reads as literal text. Raises :class:`PersonalisationError` for any
    failure of the content itself."""
    try:
        return str(_compiled(source, markdown).render({RECIPIENT_VARIABLE: recipient}))
    except Exception as error:  # the author's expressions may fail in any way
        raise PersonalisationError(f"{type(error).__name__}: {error}") from None


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False})


def _https_only(tag: str, attribute: str, value: str) -> str | None:
    if attribute in ("href", "src") and not value.lower().startswith("https://"):
        return None
    return value


def safe_html(markdown_source: str) -> str:
    """The Markdown as HTML that email clients can show safely: see the module's docstring."""
    return nh3.clean(
        _parser().render(markdown_source),
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes={"https"},
        attribute_filter=_https_only,
        strip_comments=True,
    )


def markdown_parts(body: str, recipient: Any) -> Mapping[str, str]:
    """``{"html": ..., "text": ...}`` for one person (HTML not yet styled)."""
    return {
        "html": safe_html(personalised(body, recipient, markdown=True)),
        "text": personalised(body, recipient).strip(),
    }
