"""The console says every step of the eligibility rule in words."""

from __future__ import annotations

from notify.people.eligibility import Rule
from notify.web.console.people import RULES


def test_the_person_page_words_every_step_of_the_rule() -> None:
    assert set(RULES) == {rule.value for rule in Rule}
