"""`notify campaigns watch`, `preview` and `create`'s options as a person sees them (no
database: the pieces)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from notify.cli.app import app
from notify.cli.campaigns import RecentRate, Snapshot, frame, readable
from notify.config import Settings
from notify.message.composing import preview_message
from notify.message.personal import PersonalFields
from notify.message.templates import get_template


def shown(renderable: object, width: int = 80) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False).print(renderable)
    return out.getvalue().splitlines()


def counts(**given: int) -> dict[str, int]:
    return {"pending": 0, "sent": 0, "suppressed": 0, "failed": 0, "cancelled": 0, **given}


def test_a_campaign_not_planned_yet_shows_its_audience_as_the_total() -> None:
    lines = shown(frame(Snapshot(4, "Dark mode", "scheduled", counts(), total=20), None))
    text = "\n".join(lines)
    assert "0/20" in text
    assert "None" not in text
    assert "not planned yet 20" in text


def test_the_frame_fits_80_columns_whatever_the_numbers_and_the_name() -> None:
    big = counts(pending=1_000_000, sent=2_000_000, suppressed=30_000, failed=4_000)
    snapshot = Snapshot(123456, "Dark mode, " * 20, "running", big, total=3_034_000)
    lines = shown(frame(snapshot, 1234.5))
    assert max(len(line) for line in lines) <= 80, lines
    text = "\n".join(lines)
    assert "2,034,000/3,034,000" in text
    assert "1,234.50/s" in text
    assert "left" in text


def test_five_messages_in_ten_seconds_is_half_a_message_a_second() -> None:
    rate = RecentRate(window=10)
    assert rate.add(0.0, 0) is None  # one count: no rate yet
    result = None
    for second in range(1, 11):
        result = rate.add(float(second), second // 2)
    assert result == pytest.approx(0.5)


def test_the_rate_forgets_what_is_older_than_the_window() -> None:
    rate = RecentRate(window=10)
    for second in range(0, 31):
        # 100 a second for 20 s, then nothing
        latest = rate.add(float(second), min(second, 20) * 100)
    assert latest == pytest.approx(0.0)
    assert rate.add(31.0, 2000 + 50) == pytest.approx(5.0)


def test_preview_shows_decoded_headers_and_text_and_no_mime_plumbing() -> None:
    settings = Settings(public_url="https://notify.example.com")
    message = preview_message(
        settings,
        template="product_update",
        data={
            "headline": "Le mode sombre est là — enfin",
            "summary": "Passez n'importe quelle page en mode sombre.",
            "cta_url": "https://example.com/settings",
            "cta_label": "Essayer",
        },
        email="zoe@example.com",
        recipient_public_id="preview",
        locale="fr",
        personal=PersonalFields(first_name="Zoë"),  # the greeting is the person's own field
    )
    raw = message.as_string()
    assert "=?utf-8?" in raw.lower() or "=c3" in raw.lower()  # the raw form is encoded

    text = readable(message)
    head, _, body = text.partition("\n\n")
    assert "Le mode sombre est là — enfin" in head
    assert "zoe@example.com" in head
    assert "List-Unsubscribe:" in head
    assert "Content-Transfer-Encoding" not in text and "MIME-Version" not in text
    assert "Zoë" in body
    assert "<html" not in text.lower()
    assert "<html" in readable(message, html=True).lower()


def test_long_header_values_are_unfolded() -> None:
    settings = Settings(public_url="https://notify.example.com/" + "long-path/" * 8)
    message = preview_message(
        settings,
        template="product_update",
        data=dict(get_template("product_update").sample),
        email="ada@example.com",
        recipient_public_id="preview",
    )
    assert "\n " in message.as_string().split("\n\n")[0]  # folded in the raw form
    for line in readable(message).split("\n\n")[0].splitlines():
        assert not line.startswith((" ", "\t")), line


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--name", "n"], "give --template NAME"),
        (["--name", "n", "--template", "product_update", "--subject", "S"], "go with --markdown"),
        (["--name", "n", "--markdown", "BODY"], "--markdown needs --subject"),
        (
            ["--name", "n", "--markdown", "BODY", "--subject", "S", "--template", "admin_notice"],
            "takes the place of --template",
        ),
        (["--name", "n", "--markdown", "MISSING", "--subject", "S"], "MISSING"),
    ],
)
def test_create_explains_how_content_is_given(
    tmp_path: Path, options: list[str], says: str
) -> None:
    body = tmp_path / "body.md"
    body.write_text("# Hello {{ recipient.first_name }}\n", encoding="utf-8")
    arguments = [str(body) if part == "BODY" else part for part in options]
    arguments = [str(tmp_path / "nope.md") if part == "MISSING" else part for part in arguments]
    result = CliRunner().invoke(app, ["campaigns", "create", *arguments])
    assert result.exit_code == 2
    assert (says if says != "MISSING" else "nope.md") in result.output
    assert "Traceback" not in result.output
