"""Every page notify serves has the same stylesheet, and every mail category explains itself."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jinja2 import Environment

from notify.categories import CATEGORIES
from notify.message.templates import TEMPLATES_ROOT
from notify.web.pages import templates_for

PAGES = TEMPLATES_ROOT / "pages"
STYLESHEET = (PAGES / "pages.css").read_text(encoding="utf-8")
PAGE_FILES = sorted(path.name for path in PAGES.glob("*.html"))
STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def environment() -> Environment:
    return templates_for("en").env  # the English pages, as the web app renders them


def categories() -> list[dict[str, Any]]:
    return [
        {
            "key": category.key,
            "label": category.label,
            "essential": category.essential,
            "description": category.description,
            "why_always_on": category.why_always_on,
            "subscribed": True,
        }
        for category in CATEGORIES.values()
    ]


def rendered(name: str) -> str:
    context: dict[str, Any] = {
        "company_name": "Example Ltd",
        "postal_address": "1 Example Street",
        "categories": categories(),
        "labels": ["product updates"],
        "category_label": "product updates",
        "languages": [],
        "headers": [],
        "messages": [],
    }
    return environment().get_template(name).render(context)


def test_the_stylesheet_styles_links_and_checkboxes() -> None:
    assert re.search(r"(^|\n)a \{ color: #[0-9a-f]{6}; \}", STYLESHEET)
    box = re.search(r"label\.category input\[type=checkbox\] \{([^}]*)\}", STYLESHEET)
    assert box is not None
    # A fixed size that a long description beside it cannot shrink, and no per-state margin.
    assert "flex: 0 0 22px" in box.group(1) and "margin: 2px 0 0" in box.group(1)
    assert not re.search(r":disabled \{[^}]*(width|height|margin|flex)", STYLESHEET)


@pytest.mark.parametrize("name", [name for name in PAGE_FILES if "base" not in name])
def test_every_page_has_the_one_stylesheet_and_no_other_style(name: str) -> None:
    source = (PAGES / name).read_text(encoding="utf-8")
    assert "<style" not in source and "style=" not in source, name
    styles = STYLE.findall(rendered(name))
    assert [style.strip() for style in styles] == [STYLESHEET.strip()], name


def test_every_category_has_a_description_and_every_essential_one_says_why() -> None:
    for category in CATEGORIES.values():
        assert category.description.strip(), category.key
        assert category.description.endswith("."), category.key
        assert bool(category.why_always_on) == category.essential, category.key


def test_the_preference_page_shows_every_categorys_description() -> None:
    page = rendered("preferences.html")
    for category in CATEGORIES.values():
        assert category.description in page, category.key
        if category.essential:
            assert category.why_always_on in page, category.key


def test_essential_and_optional_checkboxes_differ_only_in_being_disabled() -> None:
    boxes = re.findall(r"<input type=\"checkbox\"[^>]*>", rendered("preferences.html"))
    assert len(boxes) == len(CATEGORIES) + 1  # and the quiet hours' box, styled as they are
    for box in boxes:
        assert "class=" not in box and "style=" not in box
        assert "aria-describedby=" in box
