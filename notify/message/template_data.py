"""Checks of the data a producer or a campaign sends for a template, before anything is stored.

Pure: raises :class:`InvalidFieldError` with the JSON path of the bad field, or
:class:`InvalidFieldsError` naming every bad template variable at once (all the missing ones,
say). Used by the API, campaigns and the command line alike (through ``outbox.submit`` and
``lifecycle.create``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from notify.message.localised import (
    LANGUAGE_VARIABLE,
    MAX_TRANSLATIONS,
    TRANSLATIONS_VARIABLE,
    carries_translations,
)
from notify.message.markdown import template_problem
from notify.message.mime import has_header_break
from notify.message.templates import EmailTemplate
from notify.message.validation import locale_tag

MAX_SUBJECT_VARIABLE = 300
MAX_DEPTH = 32  # nested objects and arrays; template data is shallow
_MAX_SHOWN_KEY = 40


@dataclass(eq=False)
class InvalidFieldError(Exception):  # not frozen: raising sets __traceback__
    """Bad input, found before anything is stored. ``loc`` is the JSON path of the field; every
    part is printable text (a key that is not valid Unicode is shown escaped)."""

    loc: tuple[str, ...]
    msg: str

    @property
    def problems(self) -> tuple[InvalidFieldError, ...]:
        """Each field problem this error stands for, one per field: here, itself."""
        return (self,)


@dataclass(eq=False)
class InvalidFieldsError(InvalidFieldError):
    """Several fields wrong at once. ``problems`` holds one :class:`InvalidFieldError` per
    field, each with its own ``loc``, in the template's order; ``loc`` and ``msg`` sum them up
    in one line (``data`` and ``lacks event, location (required by template …)``)."""

    each: tuple[InvalidFieldError, ...] = ()

    @property
    def problems(self) -> tuple[InvalidFieldError, ...]:
        return self.each


def shown(text: str, limit: int = _MAX_SHOWN_KEY) -> str:
    """``text`` made safe to echo in an answer or a message: lone surrogates and NUL escaped
    (``\\ud800``, ``\\x00``), at most ``limit`` characters. Always encodable as UTF-8."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe if len(safe) <= limit else f"{safe[:limit]}…"


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not hold a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate such as \\ud800)"
    return None


def unstorable_value(data: Any, root: tuple[str, ...] = ("data",)) -> InvalidFieldError | None:
    """The first key or value in ``data`` (nested objects and arrays included, in document
    order) that cannot be encrypted, stored and rendered, or None.

    Refused: a key or string holding NUL or a lone surrogate, a number that is not finite
    (``NaN``, ``Infinity``, ``-Infinity``: Python's JSON reader accepts them, JSON does not),
    and nesting deeper than :data:`MAX_DEPTH`. Array items are located by their index as text.
    Walks iteratively, so no input can exhaust the stack here.
    """
    pending: list[tuple[tuple[str, ...], Any]] = [(root, data)]
    while pending:
        loc, value = pending.pop()
        if isinstance(value, dict | list | tuple) and len(loc) - len(root) >= MAX_DEPTH:
            return InvalidFieldError(loc, f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            children: list[tuple[tuple[str, ...], Any]] = []
            for key, item in value.items():
                name = str(key)
                problem = _text_problem(name)
                if problem is not None:
                    return InvalidFieldError((*loc, shown(name)), f"field name {problem}")
                children.append(((*loc, name), item))
            pending.extend(reversed(children))
        elif isinstance(value, list | tuple):
            items = [((*loc, str(index)), item) for index, item in enumerate(value)]
            pending.extend(reversed(items))
        elif isinstance(value, str):
            problem = _text_problem(value)
            if problem is not None:
                return InvalidFieldError(loc, problem)
        elif isinstance(value, float) and not math.isfinite(value):
            return InvalidFieldError(loc, "must be a finite number (NaN and Infinity are not JSON)")
    return None


def check_data(template: EmailTemplate, data: dict[str, Any], max_bytes: int) -> None:
    """Raise :class:`InvalidFieldError` if ``data`` is not fit for ``template``.

    Data that passes holds only valid Unicode text without NUL and only finite numbers, at most
    :data:`MAX_DEPTH` levels deep (see :func:`unstorable_value`), and is at most ``max_bytes``
    of compact JSON, so it can be encrypted and stored; the first such problem is raised alone.
    It has every variable the template needs, subject variables without line breaks and at
    most :data:`MAX_SUBJECT_VARIABLE` characters, and https URLs: these are checked for every
    variable, and all that fail are raised together, one problem per variable
    (:class:`InvalidFieldsError` when there are several; every missing variable is named).
    """
    unstorable = unstorable_value(data)  # first: it also bounds the depth json.dumps recurses
    if unstorable is not None:
        raise unstorable
    size = len(json.dumps(data, separators=(",", ":"), default=str).encode("utf-8"))
    if size > max_bytes:
        raise InvalidFieldError(("data",), f"is {size} bytes; at most {max_bytes} are allowed")
    problems = variable_problems(template, data)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise InvalidFieldsError(("data",), _summary(template, problems), problems)


def variable_problems(
    template: EmailTemplate, data: dict[str, Any]
) -> tuple[InvalidFieldError, ...]:
    """One problem per template variable that ``data`` lacks or gives a value the template
    cannot use: the missing ones first, in the template's order (``meta.toml``), then subject
    values by name, then URLs. Empty when ``data`` is fit for ``template``."""
    missing = [name for name in template.variables if name not in data]
    problems = [
        InvalidFieldError(("data", name), f"is required by template {template.name}")
        for name in missing
    ]
    problems.extend(_subject_problems(template, data, ("data",)))
    for name in template.url_variables:
        value = data.get(name)
        if name not in missing and (not isinstance(value, str) or not value.startswith("https://")):
            problems.append(InvalidFieldError(("data", name), "must be an absolute https:// URL"))
    problems.extend(_personalised_problems(template, data, ("data",), missing))
    problems.extend(_translation_problems(template, data))
    return tuple(problems)


def _personalised_problems(
    template: EmailTemplate, values: dict[str, Any], loc: tuple[str, ...], missing: list[str]
) -> list[InvalidFieldError]:
    problems = []
    for name in template.personalised_variables:
        value = values.get(name)
        if name in missing or (value is None and name not in template.variables):
            continue  # missing is reported above; an optional one may be left out
        problem = template_problem(value) if isinstance(value, str) else "must be text"
        if problem is not None:
            problems.append(InvalidFieldError((*loc, name), problem))
    return problems


def _translation_problems(template: EmailTemplate, data: dict[str, Any]) -> list[InvalidFieldError]:
    """``language`` and ``translations`` (:mod:`notify.message.localised`): each translation
    is held to the same rules as the top-level values it stands in for."""
    problems: list[InvalidFieldError] = []
    given = [name for name in (LANGUAGE_VARIABLE, TRANSLATIONS_VARIABLE) if name in data]
    if given and not carries_translations(template):
        msg = f"is not used: template {template.name} is translated by notify itself"
        return [InvalidFieldError(("data", name), msg) for name in given]
    language = data.get(LANGUAGE_VARIABLE)
    if LANGUAGE_VARIABLE in data and not (isinstance(language, str) and _is_tag(language)):
        problems.append(InvalidFieldError(("data", LANGUAGE_VARIABLE), _NOT_A_TAG))
    translations = data.get(TRANSLATIONS_VARIABLE)
    if TRANSLATIONS_VARIABLE not in data:
        return problems
    loc: tuple[str, ...] = ("data", TRANSLATIONS_VARIABLE)
    if not isinstance(translations, dict):
        return [*problems, InvalidFieldError(loc, "must be an object of language tags")]
    if len(translations) > MAX_TRANSLATIONS:
        msg = f"holds {len(translations)} languages; at most {MAX_TRANSLATIONS} are allowed"
        return [*problems, InvalidFieldError(loc, msg)]
    required = [name for name in template.variables if name in template.personalised_variables]
    for tag, values in translations.items():
        where = (*loc, shown(str(tag)))
        if not _is_tag(str(tag)):
            problems.append(InvalidFieldError(where, _NOT_A_TAG))
        elif not isinstance(values, dict):
            problems.append(InvalidFieldError(where, 'must be an object such as {"body": …}'))
        else:
            unknown = sorted(set(values) - set(template.personalised_variables))
            for name in unknown:
                msg = f"is not translatable (only {', '.join(template.personalised_variables)})"
                problems.append(InvalidFieldError((*where, shown(name)), msg))
            absent = [name for name in required if name not in values]
            problems.extend(
                InvalidFieldError((*where, name), "is required in every translation")
                for name in absent
            )
            problems.extend(_personalised_problems(template, values, where, absent))
            problems.extend(_subject_problems(template, values, where))
    return problems


def _subject_problems(
    template: EmailTemplate, values: dict[str, Any], loc: tuple[str, ...]
) -> list[InvalidFieldError]:
    problems = []
    for name in sorted(template.subject_variables):
        value = values.get(name)
        if isinstance(value, str) and has_header_break(value):
            msg = "goes into the subject and must not hold line breaks"
            problems.append(InvalidFieldError((*loc, name), msg))
        elif isinstance(value, str) and len(value) > MAX_SUBJECT_VARIABLE:
            msg = f"goes into the subject: at most {MAX_SUBJECT_VARIABLE} characters"
            problems.append(InvalidFieldError((*loc, name), msg))
    return problems


_NOT_A_TAG = "is not a language tag such as en or pt-BR"


def _is_tag(value: str) -> bool:
    try:
        locale_tag(value)
    except ValueError:
        return False
    return True


def _summary(template: EmailTemplate, problems: tuple[InvalidFieldError, ...]) -> str:
    """Several problems in one line, for a message that has room for one."""
    required = f"is required by template {template.name}"
    missing = [problem.loc[-1] for problem in problems if problem.msg == required]
    if len(missing) == len(problems):
        return f"lacks {', '.join(missing)} (required by template {template.name})"
    return "; ".join(f"{'.'.join(problem.loc[1:])} {problem.msg}" for problem in problems)
