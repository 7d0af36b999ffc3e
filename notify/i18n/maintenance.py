"""Catalogue upkeep for ``make i18n-update``: the English catalogue copies each source text.

English is the language the source text is written in, yet it has a catalogue of its own, so
its wording can change without touching the templates; a new message starts out in English
as written, like ``msgen`` of GNU gettext.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po


def fill_source_catalogue(path: Path) -> int:
    """Give every untranslated message of the catalogue at ``path`` its own text; returns how
    many were filled."""
    with path.open("rb") as source:
        catalogue = read_po(source)
    filled = 0
    for message in catalogue:
        if message.id and not message.string:
            message.string = message.id
            filled += 1
    with path.open("wb") as target:
        write_po(target, catalogue, width=100)
    return filled


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {fill_source_catalogue(Path(name))} filled")  # noqa: T201
