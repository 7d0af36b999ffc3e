"""Each category's wording is pinned to its version: a changed description fails here until its
author decides whether the change is material (a new version, the old wording kept in
``earlier``) or not (a new pin for the same version)."""

from __future__ import annotations

import hashlib

import pytest

from notify.categories import CATEGORIES, Category, current_version, wording

# (category, version) -> the first 16 hex digits of SHA-256 of that version's English wording.
PINNED = {
    ("security", "1"): "cdb7492dd7d6d4a2",
    ("admin", "1"): "8d00d96bae23bff8",
    ("product_updates", "1"): "849d9a86e565a3a4",
}


def _pin(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@pytest.mark.parametrize("category", CATEGORIES.values(), ids=list(CATEGORIES))
def test_every_wording_of_every_category_is_the_one_pinned_to_its_version(
    category: Category,
) -> None:
    for version, text in (*category.earlier, (category.version, category.description)):
        pinned = PINNED.get((category.key, version))
        assert pinned == _pin(text), (
            f"the wording of {category.key} version {version} is not the one pinned: if the "
            "change is material, give the category a new version and keep this wording in "
            "`earlier`; if it is not, pin the new text to the same version"
        )


def test_versions_of_a_category_are_distinct_and_earlier_ones_stay_readable() -> None:
    for category in CATEGORIES.values():
        versions = [version for version, _ in category.earlier] + [category.version]
        assert len(versions) == len(set(versions)), category.key
        for version, text in category.earlier:
            assert wording(category, version) == text
        assert wording(category, category.version) == category.description
        assert wording(category, "no-such-version") is None


def test_only_categories_have_a_current_version() -> None:
    assert current_version("product_updates") == CATEGORIES["product_updates"].version
    assert current_version("*") is None
    assert current_version("language:de") is None
