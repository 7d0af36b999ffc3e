"""Explanations on PostgreSQL and SQLite: what a claim records, and the dry run for now."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from notify.config import Settings
from notify.models import ConsentSource, SuppressionReason
from notify.people import decisions, preferences, suppressions
from notify.people.consent import Origin
from notify.people.decisions import CampaignState
from tests.domain.people import HASH_KEY, accepted

DEFAULTS = Settings().default_subscriptions
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_the_dry_run_names_the_default_when_the_person_never_chose(session: Session) -> None:
    _, person = accepted(session, "product_update", "explain-default")
    record = decisions.explain_now(
        session, person, "product_updates", DEFAULTS, now=NOW, default_zone="UTC"
    )
    assert record is not None
    assert record["decided_by"] == "dry_run"
    assert record["sends"] is True and record["blocked"] is None
    assert record["rule"] == "category_default"
    assert record["category"] == {
        "key": "product_updates",
        "essential": False,
        "default": "subscribed",
        "lane": "bulk",
    }
    assert record["choice"] is None and record["suppression"] is None
    assert record["campaign"] is None


def test_the_dry_run_names_the_consent_event_that_set_the_choice(session: Session) -> None:
    _, person = accepted(session, "product_update", "explain-choice")
    origin = Origin(ConsentSource.ONE_CLICK)
    preferences.set_subscription(session, person, "product_updates", False, origin, DEFAULTS)
    session.flush()
    record = decisions.explain_now(
        session, person, "product_updates", DEFAULTS, now=NOW, default_zone="UTC"
    )
    assert record is not None
    assert (record["sends"], record["blocked"], record["rule"]) == (
        False,
        "unsubscribed",
        "stored_choice",
    )
    choice = record["choice"]
    assert choice["subscribed"] is False and choice["source"] == "one_click"
    event = choice["consent_event"]
    assert event["route"] == "one_click" and isinstance(event["id"], int)
    # A later change is a later event, and the record follows it.
    preferences.set_subscription(
        session, person, "product_updates", True, Origin(ConsentSource.PAGE), DEFAULTS
    )
    session.flush()
    again = decisions.explain_now(
        session, person, "product_updates", DEFAULTS, now=NOW, default_zone="UTC"
    )
    assert again is not None and again["sends"] is True
    assert again["choice"]["consent_event"]["route"] == "page"
    assert again["choice"]["consent_event"]["id"] > event["id"]


def test_a_complaint_blocks_optional_mail_and_not_security_alerts(session: Session) -> None:
    _, person = accepted(session, "security_alert", "explain-complaint")
    suppressions.suppress(
        session,
        HASH_KEY,
        "explain-complaint@example.com",
        SuppressionReason.COMPLAINT,
        Origin(ConsentSource.COMPLAINT),
    )
    session.flush()
    optional = decisions.explain_now(
        session, person, "product_updates", DEFAULTS, now=NOW, default_zone="UTC"
    )
    assert optional is not None
    assert (optional["blocked"], optional["rule"]) == ("complained", "suppression")
    assert optional["suppression"]["reason"] == "complaint"
    assert optional["suppression"]["source"] == "complaint"
    essential = decisions.explain_now(
        session, person, "security", DEFAULTS, now=NOW, default_zone="UTC"
    )
    assert essential is not None
    assert (essential["sends"], essential["rule"]) == (True, "essential")
    assert essential["suppression"]["reason"] == "complaint"  # seen, and overruled


def test_no_address_or_name_is_in_a_record(session: Session) -> None:
    notification_id, _ = accepted(session, "product_update", "explain-private")
    decisions.record_claims(session, {notification_id: None}, DEFAULTS, now=NOW, default_zone="UTC")
    stored = decisions.recorded(session, notification_id)
    assert stored is not None
    text = json.dumps(stored)
    assert "explain-private" not in text and "example.com" not in text


def test_a_claim_records_its_verdict_and_a_later_claim_replaces_it(session: Session) -> None:
    notification_id, _ = accepted(session, "product_update", "explain-claim")
    assert decisions.recorded(session, notification_id) is None  # not claimed yet
    campaign = CampaignState(7, "running", 25.0)
    decisions.record_claims(
        session, {notification_id: None}, DEFAULTS, now=NOW, default_zone="UTC", campaign=campaign
    )
    first = decisions.recorded(session, notification_id)
    assert first is not None and first["sends"] is True and first["decided_by"] == "claim"
    assert first["campaign"] == {"id": 7, "status": "running", "rate_per_second": 25.0}
    decisions.record_claims(
        session, {notification_id: "unsubscribed"}, DEFAULTS, now=NOW, default_zone="UTC"
    )
    second = decisions.recorded(session, notification_id)
    assert second is not None and second["blocked"] == "unsubscribed"
    assert second["campaign"] is None
