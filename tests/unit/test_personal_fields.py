"""A person's own fields in templates (notify.message.personal): read by name, lenient where
the producer's data is strict, and found in a template's source for batching and previews."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import UndefinedError

from notify.message.personal import PersonalFields, fields_used
from notify.message.rendering import LayoutContext, render
from notify.message.templates import get_template
from notify.models import Base
from notify.models.base import EncryptedJSON, EncryptedText
from notify.people.importing import _records
from notify.privacy.key_rotation import ENCRYPTED_COLUMNS

LAYOUT = LayoutContext(
    company_name="Example Ltd",
    postal_address="1 Example Street",
    category_label="Product updates",
    essential=False,
    why_always_on="",
    preferences_url="https://notify.example.com/preferences/T",
    unsubscribe_url="https://notify.example.com/u/T",
)
SAMPLE = dict(get_template("product_update").sample)


def test_the_campaign_template_greets_the_person_by_their_own_first_name() -> None:
    ada = render("product_update", SAMPLE, LAYOUT, personal=PersonalFields(first_name="Ada"))
    nobody = render("product_update", SAMPLE, LAYOUT, personal=PersonalFields())
    assert "Hello Ada," in ada.text and "Hello Ada," in ada.html
    assert "Hello there," in nobody.text and "Hello there," in nobody.html


def test_a_first_name_is_escaped_in_html_and_kept_as_written_in_text() -> None:
    rendered = render(
        "product_update", SAMPLE, LAYOUT, personal=PersonalFields(first_name="<b>Ō</b>")
    )
    assert "Hello <b>Ō</b>," in rendered.text
    assert "&lt;b&gt;Ō&lt;/b&gt;" in rendered.html and "<b>Ō</b>" not in rendered.html


def test_campaign_data_no_longer_carries_the_name() -> None:
    assert "first_name" not in get_template("product_update").variables
    assert get_template("product_update").personal_fields == {"first_name"}


def make_root(tmp_path: Path, body: str) -> Path:
    root = tmp_path / "emails"
    layout = Path(__file__).resolve().parents[2] / "templates" / "emails" / "_layout"
    (root / "_layout").mkdir(parents=True)
    for file in layout.iterdir():
        (root / "_layout" / file.name).write_text(file.read_text(encoding="utf-8"))
    folder = root / "personal"
    folder.mkdir()
    (folder / "subject.txt").write_text("{{ recipient.name | default('Hi', true) }}")
    (folder / "body.txt").write_text(
        '{% extends "_layout/base.txt" %}{% block content %}' + body + "{% endblock %}"
    )
    (folder / "body.html").write_text(
        '{% extends "_layout/base.html" %}{% block content %}<p>' + body + "</p>{% endblock %}"
    )
    return root


BODY = (
    "plan={{ recipient.attributes.plan }};"
    "seats={{ recipient.attributes.seats | default(1) }};"
    "{% if recipient.attributes.beta %}beta{% else %}stable{% endif %};"
    "deep={{ recipient.attributes.missing.deeper }};"
    "data={{ headline }}"
)


def test_a_missing_field_renders_its_fallback_or_nothing_and_never_fails(tmp_path: Path) -> None:
    root = make_root(tmp_path, BODY)
    full = PersonalFields(name="Ada Lovelace", attributes={"plan": "pro", "seats": 5, "beta": True})
    rendered = render("personal", {"headline": "H"}, LAYOUT, root=root, personal=full)
    assert rendered.subject == "Ada Lovelace"
    assert "plan=pro;seats=5;beta;deep=;data=H" in rendered.text

    empty = render("personal", {"headline": "H"}, LAYOUT, root=root, personal=PersonalFields())
    assert empty.subject == "Hi"
    assert "plan=;seats=1;stable;deep=;data=H" in empty.text


def test_the_producers_data_stays_strict(tmp_path: Path) -> None:
    root = make_root(tmp_path, BODY)
    with pytest.raises(UndefinedError):
        render("personal", {}, LAYOUT, root=root, personal=PersonalFields(first_name="Ada"))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ recipient.first_name }}", {"first_name"}),
        ("{{ recipient['name'] | default('x') }}", {"name"}),
        (
            "{{ recipient.attributes.plan }} {{ recipient.attributes['seats'] }}",
            {"attributes.plan", "attributes.seats"},
        ),
        ("{{ recipient.attributes[key] }}", {"attributes"}),
        ("{% for k in recipient.attributes %}{{ k }}{% endfor %}", {"attributes"}),
        ("{{ show(recipient) }}", {"*"}),
        ("{{ recipient.nickname }}", {"*"}),
        ("{{ first_name }} {{ notify.subject }}", set()),
    ],
)
def test_fields_used_finds_what_a_template_reads(source: str, expected: set[str]) -> None:
    assert fields_used([source]) == expected


def test_people_with_equal_values_share_a_key_and_missing_fields_are_listed() -> None:
    paths = {"first_name", "attributes.plan"}
    ada = PersonalFields(first_name="Ada", attributes={"plan": "pro", "other": 1})
    also_ada = PersonalFields(first_name="Ada", name="A. L.", attributes={"plan": "pro"})
    grace = PersonalFields(first_name="Grace", attributes={"plan": ""})
    assert ada.key(paths) == also_ada.key(paths) != grace.key(paths)
    assert ada.key({"*"}) != also_ada.key({"*"})
    assert grace.lacking(paths) == ("attributes.plan",)
    assert PersonalFields().lacking({*paths, "*"}) == ("attributes.plan", "first_name")


def test_key_rotation_covers_every_encrypted_column() -> None:
    encrypted = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, EncryptedText | EncryptedJSON)
    }
    assert encrypted == set(ENCRYPTED_COLUMNS)


def test_a_csv_header_names_the_columns_and_others_become_fields_for_attributes() -> None:
    lines = [
        "user_id,email,first_name,plan,locale\n",
        "u-1,ada@example.com,Ada,pro,en\n",
        "u-2,grace@example.com,,,\n",
        "u-3,x@example.com,X,free,en,extra\n",
    ]
    assert list(_records(lines, "csv")) == [
        (
            2,
            {
                "user_id": "u-1",
                "email": "ada@example.com",
                "first_name": "Ada",
                "plan": "pro",
                "locale": "en",
            },
        ),
        (
            3,
            {
                "user_id": "u-2",
                "email": "grace@example.com",
                "first_name": "",
                "plan": "",
                "locale": "",
            },
        ),
        (4, "expected at most 5 columns: user_id,email,first_name,plan,locale"),
    ]


def test_a_csv_without_a_header_keeps_the_four_columns() -> None:
    records = list(_records(["u-1,ada@example.com,en,UTC,Ada\n"], "csv"))
    assert records == [
        (1, "expected at most 4 columns: user_id,email,locale,timezone (or a header row)")
    ]


def test_a_header_names_notify_columns_in_any_case_and_keeps_other_names_as_written() -> None:
    records = list(
        _records(["User_ID,EMAIL,First_Name,Plan\n", "u-1,a@example.com,Ada,pro\n"], "csv")
    )
    assert records == [
        (2, {"user_id": "u-1", "email": "a@example.com", "first_name": "Ada", "Plan": "pro"})
    ]
