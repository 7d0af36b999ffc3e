"""The compiled message catalogues (gettext ``.mo``), one per shipped locale.

Sources are ``translations/<locale>/LC_MESSAGES/messages.po`` in the repository; ``make install``
compiles them (``make i18n-compile``) and nothing compiled is committed. A shipped locale whose
catalogue is missing is an installation fault, reported as such rather than shown in English.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.support import Translations

from notify.i18n.locales import SHIPPED_LOCALES

TRANSLATIONS_ROOT = Path(__file__).resolve().parents[2] / "translations"
DOMAIN = "messages"


class CatalogueMissingError(RuntimeError):
    """A shipped locale has no compiled catalogue: run ``make i18n-compile``."""


def N_(message: str) -> str:  # noqa: N802 (the gettext convention for "mark, do not translate")
    """Marks ``message`` for extraction where it is defined; translated where it is shown."""
    return message


def compiled_path(locale: str, root: Path = TRANSLATIONS_ROOT) -> Path:
    return root / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"


@cache
def translations(locale: str) -> Translations:
    """The catalogue of a shipped ``locale`` (``en``, ``de``, ``fr``)."""
    if locale not in SHIPPED_LOCALES:
        raise ValueError(f"{locale!r} is not a shipped locale ({', '.join(SHIPPED_LOCALES)})")
    path = compiled_path(locale)
    if not path.is_file():
        raise CatalogueMissingError(
            f"the {locale} catalogue is not compiled ({path}); run make i18n-compile"
        )
    with path.open("rb") as compiled:
        return Translations(compiled, domain=DOMAIN)


def gettext(locale: str, message: str) -> str:
    """``message`` in ``locale``'s language."""
    return translations(locale).gettext(message)
