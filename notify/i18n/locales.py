"""Which language a person gets: the locale chain, shipped locales and ``Accept-Language``.

A language tag is read as BCP 47 (``de-AT``, ``pt-BR``, ``zh-Hant-TW``; ``_`` is taken for
``-``). Its chain drops one subtag at a time (``de-AT`` → ``de``), then follows the service's
default locale the same way, then English. The first entry of the chain that is available wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from babel import Locale

SHIPPED_LOCALES = ("en", "de", "fr")
"""The languages notify's own text (emails, pages, the console's chrome) is translated into."""
FALLBACK_LOCALE = "en"
"""The last entry of every chain: the language the source text is written in."""
MAX_ACCEPTED_LANGUAGES = 20  # entries of an Accept-Language header looked at, at most


def normalised(tag: str) -> str:
    """``tag`` with ``-`` between subtags, the language in lower case (``de_at`` → ``de-at``;
    matching is case-insensitive, so region case is left as given)."""
    parts = tag.strip().replace("_", "-").split("-")
    return "-".join([parts[0].lower(), *parts[1:]])


def _shortened(tag: str) -> list[str]:
    """``de-AT`` → ``["de-AT", "de"]``: the tag, then one subtag fewer each time."""
    parts = normalised(tag).split("-")
    return ["-".join(parts[:end]) for end in range(len(parts), 0, -1)]


def _starts(tag: str | None, default: str) -> list[str]:
    return [start for start in (tag, default, FALLBACK_LOCALE) if start and start.strip()]


def chain(tag: str | None, default: str = FALLBACK_LOCALE) -> tuple[str, ...]:
    """The tags to try for ``tag``, most specific first, without repeats:
    ``chain("de-AT", "fr")`` is ``("de-AT", "de", "fr", "en")``."""
    out: list[str] = []
    for start in _starts(tag, default):
        for candidate in _shortened(start):
            if candidate.lower() not in (seen.lower() for seen in out):
                out.append(candidate)
    return tuple(out)


def pick(tag: str | None, available: Iterable[str], default: str = FALLBACK_LOCALE) -> str:
    """What ``available`` offers for ``tag``, spelled as in ``available`` (compared without
    case). For the person's tag, then the default, then English, in turn: the tag or a shorter
    one (``de-AT``, ``de``), else any available variant of the same language (``fr`` takes
    ``fr-CA``). The first available one when nothing matches."""
    by_lower = {normalised(name).lower(): name for name in available}
    if not by_lower:
        raise ValueError("nothing is available to pick from")
    for start in _starts(tag, default):
        shortened = _shortened(start)
        for candidate in shortened:
            if candidate.lower() in by_lower:
                return by_lower[candidate.lower()]
        language = shortened[-1].lower()
        for key, name in by_lower.items():
            if key.split("-")[0] == language:
                return name
    return next(iter(by_lower.values()))


def shipped(tag: str | None, default: str = FALLBACK_LOCALE) -> str:
    """The shipped locale for ``tag`` along its chain (``de-AT`` → ``de``; ``pt`` → the
    default, or English)."""
    return pick(tag, SHIPPED_LOCALES, default)


def accepted(header: str | None) -> tuple[str, ...]:
    """The tags of an ``Accept-Language`` header, most wanted first (by ``q``, then order);
    entries with ``q=0``, ``*`` and anything unreadable are left out."""
    if not header:
        return ()
    weighted: list[tuple[float, int, str]] = []
    for position, entry in enumerate(header.split(",")[:MAX_ACCEPTED_LANGUAGES]):
        tag, _, params = entry.strip().partition(";")
        tag = tag.strip()
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        if not tag or tag == "*" or not 0 < quality <= 1 or not _readable(tag):
            continue
        weighted.append((-quality, position, tag))
    return tuple(tag for _, _, tag in sorted(weighted))


def _readable(tag: str) -> bool:
    return all(part.isalnum() and part.isascii() and len(part) <= 8 for part in tag.split("-"))


def negotiated(header: str | None, default: str = FALLBACK_LOCALE) -> str:
    """The shipped locale that best meets an ``Accept-Language`` header: the first wanted tag
    whose chain (without the default) reaches a shipped locale, else ``shipped(default)``."""
    for tag in accepted(header):
        for candidate in _shortened(tag):
            if candidate.lower() in SHIPPED_LOCALES:
                return candidate.lower()
    return shipped(default)


@cache
def own_name(locale: str) -> str:
    """A locale's name in its own language, capitalised (``Deutsch``, ``Français``)."""
    name = Locale.parse(locale.replace("-", "_")).display_name or locale
    return name[:1].upper() + name[1:]
