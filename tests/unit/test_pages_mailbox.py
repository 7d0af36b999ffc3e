"""The mailbox page's treatment of a captured email: links open in a new tab, text URLs are
links, and the HTML part stays sandboxed without scripts."""

from __future__ import annotations

import re

from notify.web.routes.mailbox import FRAME_HEAD, FRAME_SANDBOX, framed_html, linked_text


def test_the_frame_may_open_unsandboxed_tabs_and_nothing_else() -> None:
    allowed = set(FRAME_SANDBOX.split())
    assert allowed == {"allow-popups", "allow-popups-to-escape-sandbox"}
    # Scripts, forms and the page's own origin stay out of the email's reach.
    assert not allowed & {
        "allow-scripts",
        "allow-same-origin",
        "allow-forms",
        "allow-top-navigation",
    }


def test_the_framed_email_opens_every_link_in_a_new_tab_and_runs_no_script() -> None:
    assert '<base target="_blank">' in FRAME_HEAD
    assert "script-src 'none'" in FRAME_HEAD


def test_the_frame_head_goes_first_in_the_emails_head() -> None:
    html = (
        '<!DOCTYPE html>\n<html lang="en">\n<HEAD>\n<title>Hi</title>\n</HEAD><body>x</body></html>'
    )
    framed = framed_html(html)
    assert framed.startswith('<!DOCTYPE html>\n<html lang="en">\n<HEAD>' + FRAME_HEAD)
    assert framed.replace(FRAME_HEAD, "", 1) == html


def test_an_email_without_a_head_gets_it_after_html_or_at_the_start() -> None:
    assert framed_html("<html><body>x</body></html>") == f"<html>{FRAME_HEAD}<body>x</body></html>"
    assert framed_html("<p>x</p>") == f"{FRAME_HEAD}<p>x</p>"
    assert framed_html("<header>not a head</header>") == f"{FRAME_HEAD}<header>not a head</header>"


def test_urls_in_the_text_part_become_links_that_open_in_a_new_tab() -> None:
    text = (
        "Unsubscribe: http://127.0.0.1:8000/u/abc.def-ghi_jkl\n"
        "See https://example.com/a?b=1&c=2. Or (https://example.com/x), then stop."
    )
    shown = str(linked_text(text))
    hrefs = re.findall(r'<a href="([^"]+)" target="_blank" rel="noopener noreferrer">', shown)
    assert hrefs == [
        "http://127.0.0.1:8000/u/abc.def-ghi_jkl",
        "https://example.com/a?b=1&amp;c=2",
        "https://example.com/x",
    ]
    assert "then stop." in shown and "), then" in shown


def test_the_text_part_is_escaped_and_only_web_urls_are_linked() -> None:
    shown = str(
        linked_text('<script>alert(1)</script> javascript:alert(1) "https://x.example/<b>"')
    )
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    assert 'href="javascript' not in shown
    assert shown.count("<a ") == 1
    assert '<a href="https://x.example/"' in shown


def test_the_mailbox_answers_only_requests_addressed_to_a_loopback_name() -> None:
    from notify.web.routes.mailbox import addressed_to_this_machine

    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "127.0.0.1"):
        assert addressed_to_this_machine(host), host
    for host in ("evil.example:8000", "127.0.0.1.evil.example", "", "[::2]:80", "localhost.x"):
        assert not addressed_to_this_machine(host), host
