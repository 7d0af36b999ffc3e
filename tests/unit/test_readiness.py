"""/readyz and the schema: which migration revisions count as ready."""

from __future__ import annotations


def test_readiness_accepts_the_head_or_a_newer_schema_and_refuses_an_older_one() -> None:
    """A rolling deploy migrates first: the old release's web stays ready on the new schema."""
    from notify.web.routes.health import _known_revisions, schema_ready

    head, known = _known_revisions()
    assert head in known and "0013" in known
    assert schema_ready(head)
    assert schema_ready("9999_from_a_newer_release")
    assert not schema_ready("0013")
    assert not schema_ready("")
