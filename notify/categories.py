"""The registry of mail categories: which are essential, their defaults, and their lane.

Add a non-essential category here (and its sender in configuration); whether people are
subscribed to it until they say otherwise is configuration (``NOTIFY_SUBSCRIBED_BY_DEFAULT``).
"""

from __future__ import annotations

from dataclasses import dataclass

from notify.i18n.catalogues import N_
from notify.queues import Queue


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    label: str
    essential: bool
    lane: Queue
    description: str
    """What mail of this category is about, in one sentence for the person who gets it (shown on
    the preference page). Every category has one."""
    why_always_on: str = ""
    """Why an essential category cannot be turned off (empty for the others)."""
    version: str = "1"
    """The version of ``description``. A material change of its wording makes a new version,
    and the wording it replaces goes into ``earlier``; every consent event records the version
    current when it was made (``tests/unit/test_category_versions.py`` pins each wording to
    its version, so a changed text cannot slip through unversioned)."""
    earlier: tuple[tuple[str, str], ...] = ()
    """``(version, description)`` of each earlier wording, oldest first."""
    label_in_text: str = ""
    """The label as it reads inside a sentence ("you are subscribed to product updates"); each
    language writes it its own way (German keeps the capital), so it is a message of its own.

    Every text here is English and marked for the catalogues; the places that show one to a
    person translate it (``notify.i18n.catalogues.gettext``)."""


CATEGORIES: dict[str, Category] = {
    category.key: category
    for category in (
        Category(
            key="security",
            label=N_("Security alerts"),
            label_in_text=N_("security alerts"),
            essential=True,
            lane=Queue.ESSENTIAL,
            description=N_(
                "New sign-ins, password changes and other events that may mean someone else is "
                "using your account."
            ),
            why_always_on=N_("Security alerts protect your account, so they cannot be turned off."),
        ),
        Category(
            key="admin",
            label=N_("Administrative notices"),
            label_in_text=N_("administrative notices"),
            essential=True,
            lane=Queue.ESSENTIAL,
            description=N_("Changes to your account, your plan or our terms of service."),
            why_always_on=N_(
                "Administrative notices tell you about changes to your account or our terms, "
                "so they cannot be turned off."
            ),
        ),
        Category(
            key="product_updates",
            label=N_("Product updates"),
            label_in_text=N_("product updates"),
            essential=False,
            lane=Queue.BULK,
            description=N_(
                "News about the product: new features, improvements and invitations to try them."
            ),
        ),
    )
}


def wording(category: Category, version: str) -> str | None:
    """The description people saw under ``version`` of ``category``, or None if unknown."""
    if version == category.version:
        return category.description
    return dict(category.earlier).get(version)


def current_version(category_key: str) -> str | None:
    """The version of the category's wording shown now; None for a key that is no category
    (such as ``*``, all of them)."""
    category = CATEGORIES.get(category_key)
    return None if category is None else category.version


class UnknownCategoryError(KeyError):
    pass


def get_category(key: str) -> Category:
    try:
        return CATEGORIES[key]
    except KeyError:
        raise UnknownCategoryError(key) from None


def non_essential() -> list[Category]:
    return [category for category in CATEGORIES.values() if not category.essential]
