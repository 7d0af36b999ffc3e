"""Unit tests for notify.message.rendering and notify.message.templates (pure: files only)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import jinja2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jinja2 import meta

from notify.categories import CATEGORIES
from notify.i18n.formatting import moment, parse_moment
from notify.i18n.jinja import I18N_EXTENSION, LOCALE_FILTERS
from notify.message.personal import RECIPIENT_VARIABLE
from notify.message.rendering import LayoutContext, RenderedEmail, one_line, render
from notify.message.templates import (
    EMAIL_TEMPLATES,
    GETTEXT_NAMES,
    SYSTEM_VARIABLE,
    TEMPLATE_FILES,
    TEMPLATE_FILTERS,
    catalogue,
)

UNSUBSCRIBE_URL = "https://notify.example.com/u/UNSUBSCRIBE-TOKEN-123"
PREFERENCES_URL = "https://notify.example.com/preferences/PREFERENCES-TOKEN-456"
POSTAL_ADDRESS = "42 Harbour Road, Port Town, PT4 2HR"
WHY_ALWAYS_ON = "These notices keep your account safe, so they cannot be switched off."

ADMIN_DATA = {
    "first_name": "Ada",
    "headline": "Your plan changes next month",
    "message": "Nothing for you to do.",
}


def make_layout(*, essential: bool, unsubscribe_url: str | None = UNSUBSCRIBE_URL) -> LayoutContext:
    return LayoutContext(
        company_name="Harbour Widgets Ltd",
        postal_address=POSTAL_ADDRESS,
        category_label="Product updates" if not essential else "Administrative notices",
        essential=essential,
        why_always_on=WHY_ALWAYS_ON if essential else "",
        preferences_url=PREFERENCES_URL,
        unsubscribe_url=unsubscribe_url,
    )


ESSENTIAL = make_layout(essential=True, unsubscribe_url=None)
NON_ESSENTIAL = make_layout(essential=False)


def render_admin(**data: str) -> RenderedEmail:
    return render("admin_notice", {**ADMIN_DATA, **data}, ESSENTIAL)


def make_template_root(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    """A private template tree: the real layout plus one template written by the test."""
    root = tmp_path / "emails"
    shutil.copytree(EMAIL_TEMPLATES / "_layout", root / "_layout")
    folder = root / name
    folder.mkdir()
    for filename, source in files.items():
        (folder / filename).write_text(source, encoding="utf-8")
    return root


# --- escaping -----------------------------------------------------------------------------


def test_a_script_tag_in_the_data_is_escaped_in_the_html_part_and_literal_in_the_text_part():
    payload = "<script>alert(1)</script>"
    rendered = render_admin(first_name=payload)

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "<script" not in rendered.html.lower()
    assert f"Hello {payload}," in rendered.text


def test_ampersands_quotes_and_angle_brackets_stay_literal_in_subject_and_text():
    headline = 'Tom & Jerry\'s "deal" <1>'
    rendered = render_admin(headline=headline, message=headline)

    assert rendered.subject == headline
    assert headline in rendered.text
    for part in (rendered.subject, rendered.text):
        assert "&amp;" not in part
        assert "&#39;" not in part
        assert "&#34;" not in part
        assert "&quot;" not in part
        assert "&lt;" not in part


def test_the_same_ampersand_headline_is_escaped_in_the_html_part():
    rendered = render_admin(headline="Tom & Jerry <1>")

    assert "Tom &amp; Jerry &lt;1&gt;" in rendered.html
    assert "Tom & Jerry <1>" not in rendered.html


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=40))
def test_no_data_value_can_add_markup_to_the_html_part(name):
    control = render_admin(first_name="Ada")
    rendered = render_admin(first_name=name)

    # Whatever the value, it adds no tag, attribute quote or entity start to the HTML.
    for char in "<>\"'":
        assert rendered.html.count(char) == control.html.count(char)
    # and it reaches the text part unchanged.
    assert f"Hello {name}," in rendered.text


def test_template_syntax_in_the_data_is_never_evaluated():
    rendered = render_admin(first_name="{{ 7 * 7 }}{% raw %}")

    assert "{{ 7 * 7 }}{% raw %}" in rendered.text
    assert "49" not in rendered.text
    assert "{{ 7 * 7 }}" in rendered.html


# --- strictness -----------------------------------------------------------------------------


@pytest.mark.parametrize("missing", sorted(ADMIN_DATA))
def test_a_missing_variable_raises_undefined_error_instead_of_rendering_blank(missing):
    data = {key: value for key, value in ADMIN_DATA.items() if key != missing}

    with pytest.raises(jinja2.UndefinedError, match=missing):
        render("admin_notice", data, ESSENTIAL)


def test_every_catalogue_template_with_variables_refuses_an_empty_data_dict():
    with_variables = {name: t for name, t in catalogue().items() if t.variables}
    assert len(with_variables) >= 3
    for name, template in with_variables.items():
        layout = make_layout(essential=template.category.essential)
        with pytest.raises(jinja2.UndefinedError):
            render(name, {}, layout)


# --- one-line subject -----------------------------------------------------------------------

BREAKING_SPACE = re.compile(r"[^\S\u00a0\u2007\u202f]+")  # whitespace but the no-break spaces
line_noise = st.lists(
    st.sampled_from(
        ["a", "Z", "é", " ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\x85", "\u2028", "\u00a0"]
    ),
    max_size=30,
).map("".join)


@given(st.text())
@example("  Line one\n\tline two\r\n")
@example("\u2028\u2029\x85\x1c")
def test_one_line_never_leaves_a_line_break_or_surrounding_whitespace(value):
    result = one_line(value)

    assert "\n" not in result
    assert "\r" not in result
    assert result == result.strip()
    assert "  " not in result
    # Same words, in order: only the whitespace between them changes. A no-break space is part
    # of a word (a translation puts one before a French colon), except at either end.
    assert result.split(" ") == (BREAKING_SPACE.split(value.strip()) if value.strip() else [""])


@settings(max_examples=80, deadline=None)
@given(headline=line_noise)
@example(headline="Terms\nchange\r\nsoon\n")
@example(headline="\t\t")
def test_a_headline_with_newlines_and_tabs_renders_as_a_one_line_subject(headline):
    rendered = render_admin(headline=headline)

    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject
    assert rendered.subject == rendered.subject.strip()
    assert rendered.subject == " ".join(BREAKING_SPACE.split(headline.strip())).strip()


def test_a_subject_template_ending_in_a_newline_renders_as_one_line(tmp_path):
    root = make_template_root(
        tmp_path,
        "welcome",
        {
            "subject.txt": "Welcome,\n   {{ first_name }}!\n\n",
            "body.txt": '{% extends "_layout/base.txt" %}{% block content %}Hi{% endblock %}',
            "body.html": '{% extends "_layout/base.html" %}{% block content %}<p>Hi</p>'
            "{% endblock %}",
        },
    )

    rendered = render("welcome", {"first_name": "Ada"}, ESSENTIAL, root=root)

    assert rendered.subject == "Welcome, Ada!"


# --- CSS and HTML hygiene -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_css_is_inlined_on_the_heading_and_nothing_is_loaded_or_run(name):
    template = catalogue()[name]
    html = render(name, template.sample, make_layout(essential=template.category.essential)).html

    heading = re.search(r"<h1\b[^>]*>", html)
    assert heading is not None
    assert 'style="' in heading.group(0)
    lowered = html.lower()
    assert "<link" not in lowered
    assert "stylesheet" not in lowered
    assert "@import" not in lowered
    assert "<script" not in lowered
    assert 'class="footer"' in html  # the layout wrapped the body


# --- the catalogue ---------------------------------------------------------------------------


def variables_used_by(name: str) -> set[str]:
    env = jinja2.Environment(autoescape=False, extensions=[I18N_EXTENSION])
    # notify's own filters, known by name
    env.filters.update(dict.fromkeys((*TEMPLATE_FILTERS, *LOCALE_FILTERS), str))
    used: set[str] = set()
    for filename in TEMPLATE_FILES:
        source = (EMAIL_TEMPLATES / name / filename).read_text(encoding="utf-8")
        used |= meta.find_undeclared_variables(env.parse(source))
    # the layout's, the person's own, and gettext's
    return used - {SYSTEM_VARIABLE, RECIPIENT_VARIABLE} - GETTEXT_NAMES


def test_the_catalogue_is_not_empty_and_skips_layout_folders():
    names = set(catalogue())

    assert names
    assert not any(name.startswith("_") for name in names)
    on_disk = {
        folder.name
        for folder in EMAIL_TEMPLATES.iterdir()
        if folder.is_dir() and not folder.name.startswith("_")
    }
    assert names == on_disk


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_declared_variables_match_what_the_template_files_use(name):
    template = catalogue()[name]

    assert {*template.variables, *template.optional_variables} == variables_used_by(name)
    assert len(template.variables) == len(set(template.variables))
    assert SYSTEM_VARIABLE not in template.variables


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_url_and_subject_variables_are_declared_variables(name):
    template = catalogue()[name]

    assert set(template.url_variables) <= set(template.variables)
    assert template.subject_variables <= set(template.variables)
    for variable in template.url_variables:
        assert str(template.sample[variable]).startswith("https://")


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_the_sample_of_every_template_renders_and_its_category_exists(name):
    template = catalogue()[name]

    assert template.category.key in CATEGORIES
    assert CATEGORIES[template.category.key] == template.category
    rendered = render(name, template.sample, make_layout(essential=template.category.essential))
    assert rendered.subject
    assert rendered.text.strip()
    assert rendered.html.strip()
    everything = "\n".join((rendered.subject, rendered.text, rendered.html))
    for name, value in template.sample.items():
        if name not in template.personalised_variables:  # those are templates themselves
            # a date-time is written for the person (here English, in the default zone, UTC)
            shown = moment(value, "en", None) if parse_moment(value) else str(value)
            assert shown in everything


# --- the layout footer -----------------------------------------------------------------------


def test_a_non_essential_message_has_unsubscribe_url_and_postal_address_in_both_parts():
    template = catalogue()["product_update"]
    rendered = render("product_update", template.sample, NON_ESSENTIAL)

    for part in (rendered.text, rendered.html):
        assert UNSUBSCRIBE_URL in part
        assert PREFERENCES_URL in part
        assert POSTAL_ADDRESS in part
    assert f'href="{UNSUBSCRIBE_URL}"' in rendered.html
    assert WHY_ALWAYS_ON not in rendered.text


def test_an_essential_message_explains_why_and_links_preferences_without_unsubscribe():
    template = catalogue()["security_alert"]
    rendered = render("security_alert", template.sample, ESSENTIAL)

    for part in (rendered.text, rendered.html):
        assert WHY_ALWAYS_ON in part
        assert PREFERENCES_URL in part
        assert POSTAL_ADDRESS in part
        assert "/u/" not in part
        assert "unsubscribe" not in part.lower()
        assert "None" not in part


def test_an_essential_layout_ignores_an_unsubscribe_url_passed_by_mistake():
    layout = make_layout(essential=True, unsubscribe_url=UNSUBSCRIBE_URL)
    rendered = render("admin_notice", ADMIN_DATA, layout)

    assert UNSUBSCRIBE_URL not in rendered.text
    assert UNSUBSCRIBE_URL not in rendered.html


def test_the_layout_is_added_even_when_the_body_template_has_no_footer(tmp_path):
    root = make_template_root(
        tmp_path,
        "bare",
        {
            "subject.txt": "Bare",
            "body.txt": '{% extends "_layout/base.txt" %}{% block content %}Only this'
            "{% endblock %}",
            "body.html": '{% extends "_layout/base.html" %}{% block content %}<h1>Only</h1>'
            "{% endblock %}",
        },
    )

    rendered = render("bare", {}, NON_ESSENTIAL, root=root)

    for part in (rendered.text, rendered.html):
        assert UNSUBSCRIBE_URL in part
        assert POSTAL_ADDRESS in part


def test_a_url_with_query_parameters_is_literal_in_text_and_entity_escaped_in_html():
    template = catalogue()["product_update"]
    url = "https://example.com/try?feature=dark&source=email"
    rendered = render("product_update", {**template.sample, "cta_url": url}, NON_ESSENTIAL)

    assert url in rendered.text
    assert 'href="https://example.com/try?feature=dark&amp;source=email"' in rendered.html


# --- template names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["_layout", "_layout/base", "../security_alert", "security_alert/../admin_notice", ".hidden"],
)
def test_a_template_name_with_a_slash_or_leading_underscore_is_refused(name):
    with pytest.raises(jinja2.TemplateNotFound):
        render(name, ADMIN_DATA, ESSENTIAL)


@settings(max_examples=50, deadline=None)
@given(
    name=st.one_of(
        st.builds(lambda a, b: f"{a}/{b}", st.text(max_size=10), st.text(max_size=10)),
        st.text(max_size=15).map(lambda rest: "_" + rest),
    )
)
def test_any_name_with_a_slash_or_leading_underscore_is_refused(name):
    with pytest.raises(jinja2.TemplateNotFound):
        render(name, ADMIN_DATA, ESSENTIAL)


def test_an_unknown_template_name_is_refused():
    with pytest.raises(jinja2.TemplateNotFound):
        render("no_such_template", ADMIN_DATA, ESSENTIAL)
