"""Campaign content in Markdown (notify.message.markdown and the markdown_update template):
sanitised, https-only, styled by the layout, personalised in a sandbox, validated up front."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy

import pytest

from notify import crypto
from notify.config import Settings
from notify.message.composing import BatchComposer, compose
from notify.message.jobs import Claimed
from notify.message.markdown import safe_html, template_problem
from notify.message.personal import PersonalFields
from notify.message.rendering import LayoutContext, render
from notify.message.template_data import InvalidFieldError, check_data
from notify.message.templates import get_template, personal_fields_for

LAYOUT = LayoutContext(
    company_name="Example Ltd",
    postal_address="1 Example Street, Example Town",
    category_label="Product updates",
    essential=False,
    why_always_on="",
    preferences_url="https://notify.example.com/preferences/T",
    unsubscribe_url="https://notify.example.com/u/T",
)
HOSTILE = """# Big news

<script>alert(1)</script><form action="https://evil.example"><input name="p"></form>
<b style="position:fixed">raw html</b>

[fine](https://example.com/a) [plain http](http://example.com/b) [script](javascript:alert(1))
[relative](/c) ![pixel](http://track.example/p.gif) ![logo](https://example.com/logo.png)

<img src="https://example.com/x.png" onerror="alert(1)">
"""


def test_markdown_becomes_structure_and_https_links_and_nothing_else() -> None:
    html = safe_html(HOSTILE)
    tags = re.findall(r"<[^>]+>", html)  # what a mail client would act on (text is escaped)
    assert {re.match(r"</?([a-z0-9]+)", tag).group(1) for tag in tags} <= {  # type: ignore[union-attr]
        "h1",
        "p",
        "a",
        "img",
    }
    for tag in tags:
        assert not re.search(r"\b(style|on[a-z]+|class)=", tag), tag
        assert "http://" not in tag and "javascript:" not in tag and 'href="/' not in tag, tag
    assert '<a href="https://example.com/a"' in html
    assert '<img src="https://example.com/logo.png" alt="logo">' in html
    assert "<h1>Big news</h1>" in html
    assert "&lt;script&gt;" in html  # raw HTML in the source is shown as text


def data(body: str, subject: str = "News for {{ recipient.first_name | default('you') }}") -> dict:
    return {"subject": subject, "preheader": "A line to preview", "body": body}


def test_the_layout_wraps_it_styles_it_and_keeps_the_footer_and_unsubscribe_link() -> None:
    body = "Hello {{ recipient.first_name | default('there', true) }},\n\n## Dark mode\n\nTry it."
    rendered = render("markdown_update", data(body), LAYOUT, personal=PersonalFields("Ada"))
    assert rendered.subject == "News for Ada"
    assert re.search(r"<h2 style=\"[^\"]*font-size", rendered.html)  # the layout's styles
    assert "https://notify.example.com/u/T" in rendered.html
    assert "https://notify.example.com/u/T" in rendered.text
    assert "1 Example Street" in rendered.html and "1 Example Street" in rendered.text
    assert 'class="preheader"' in rendered.html and "A line to preview" in rendered.html
    assert rendered.text.startswith("Hello Ada,\n\n## Dark mode\n\nTry it.")


def test_a_persons_value_is_literal_text_in_the_markdown() -> None:
    body = "Hello {{ recipient.first_name }}, plan {{ recipient.attributes.plan }}"
    person = PersonalFields("*Ada* <img src=x>", attributes={"plan": "[pro](https://x.example)"})
    rendered = render("markdown_update", data(body), LAYOUT, personal=person)
    assert "Hello *Ada* &lt;img src=x&gt;, plan [pro](https://x.example)" in rendered.html
    assert "<em>" not in rendered.html and "https://x.example" not in rendered.html.split('"')
    assert "Hello *Ada* <img src=x>, plan [pro](https://x.example)" in rendered.text


def test_the_sandbox_gives_marketing_the_persons_fields_and_nothing_more() -> None:
    body = "{{ recipient.__class__ }}|{{ ''.__class__.__mro__ }}|{{ recipient.first_name }}"
    rendered = render("markdown_update", data(body), LAYOUT, personal=PersonalFields("Ada"))
    assert rendered.text.startswith("||Ada")
    assert template_problem("{{ recipient.first_name") is not None
    assert template_problem("{% for x in y %}") is not None
    assert template_problem("Hello {{ recipient.first_name | default('there') }}") is None


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"subject": "Hi", "body": "{{ oops"}, "body"),
        ({"subject": "Hi {% if %}", "body": "x"}, "subject"),
        ({"subject": "Hi", "body": "x", "preheader": 5}, "preheader"),
        ({"body": "x"}, "subject"),
    ],
)
def test_bad_content_is_refused_before_anything_is_stored(variables: dict, field: str) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        check_data(get_template("markdown_update"), variables, 32_000)
    assert ("data", field) in [problem.loc for problem in caught.value.problems]


def test_the_fields_a_markdown_campaign_reads_come_from_its_content() -> None:
    template = get_template("markdown_update")
    body = "{{ recipient.first_name | default('there') }} {{ recipient.attributes.plan }}"
    assert personal_fields_for(template, data(body, subject="Hi")) == {
        "first_name",
        "attributes.plan",
    }
    assert personal_fields_for(template, data("No names here", subject="Hi")) == frozenset()


def test_the_batch_composer_builds_what_compose_builds_for_a_markdown_campaign() -> None:
    crypto.install(["unit-test-key"])
    settings = Settings(public_url="https://notify.example.com")
    content = data("Hello {{ recipient.first_name | default('there', true) }}!\n\n**Bold** news.")
    composer = BatchComposer(settings, "markdown_update", "product_updates", content)
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    for number, first_name in enumerate(["Ada", None, "Zoë", "Ada"]):
        job = Claimed(
            id=f"n-{number}",
            template="markdown_update",
            category="product_updates",
            data=content,
            attempts=1,
            message_id=f"<{number}@mail.example>",
            email=f"p{number}@example.com",
            recipient_id=number,
            recipient_public_id=f"pub-{number}",
            locale="en",
            erased=False,
            personal=PersonalFields(first_name),
        )
        fast = email.message_from_bytes(composer.raw(job, now=now), policy=policy.default)
        full = email.message_from_bytes(
            compose(settings, job, now=now).as_bytes(), policy=policy.default
        )
        for part in ("plain", "html"):
            fast_part = fast.get_body((part,)).get_content()  # type: ignore[union-attr]
            full_part = full.get_body((part,)).get_content()  # type: ignore[union-attr]
            token = re.compile(r"/preferences/[A-Za-z0-9_.\-]+")
            assert token.sub("/p/T", fast_part) == token.sub("/p/T", full_part)
            assert f"Hello {first_name or 'there'}!" in fast_part
        assert fast["Subject"] == f"News for {first_name or 'you'}"


@pytest.mark.parametrize(
    "body",
    [
        "{{ 1/0 }}",
        "{{ recipient.first_name() }}",
        "{{ range(10**9) | list }}",
        "{{ recipient.attributes.seats / 0 }}",
    ],
)
def test_content_that_fails_when_rendered_is_refused_up_front(body: str) -> None:
    problem = template_problem(body)
    assert problem is not None and problem.startswith("cannot be rendered")


def test_a_render_failure_for_one_person_is_a_template_error_the_worker_records() -> None:
    from jinja2 import TemplateError

    body = "{{ 10 // (recipient.attributes.seats | default(1)) }}"  # fine for both trials
    assert template_problem(body) is None
    nobody = PersonalFields(attributes={"seats": 0})
    with pytest.raises(TemplateError):
        render("markdown_update", data(body), LAYOUT, personal=nobody)
