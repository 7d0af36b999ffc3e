"""Planning a campaign (notify.campaigns.planning) against real PostgreSQL: a large plan leaves
the notifications table with statistics that match its size."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from notify import partitions
from notify.campaigns.audience import AudienceFilter, audience_size, fallback_report
from notify.campaigns.planning import plan_for_a_while, plan_next_page
from notify.config import Settings
from notify.db import ANALYZE_AFTER_ROWS
from notify.models import Campaign, CampaignStatus, Notification, Recipient
from notify.models.base import utcnow
from notify.queues import TaskName
from tests.domain.people import under_another_key

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def pg_session(domain_engines: dict[str, Engine]) -> Iterator[Session]:
    """A PostgreSQL session in a transaction rolled back afterwards (statistics are
    PostgreSQL's; SQLite plans without them)."""
    connection = domain_engines["postgresql"].connect()
    outer = connection.begin()
    with Session(bind=connection, expire_on_commit=False) as in_test:
        yield in_test
    outer.rollback()
    connection.close()


def _people(session: Session, count: int, locale: str) -> None:
    session.execute(
        insert(Recipient),
        [
            {
                "locale": locale,
                "public_id": f"plan-{number}",
                "user_id": f"plan-user-{number}",
                "email": f"plan{number}@example.com",
                "email_hash": f"plan-hash-{number}",
                "created_at": NOW,
                "updated_at": NOW,
            }
            for number in range(count)
        ],
    )


def _planned_rows_estimate(session: Session) -> float:
    """The planner's row estimate for the table that holds this month's notifications (on
    PostgreSQL, the month's partition: what the planner's ``ANALYZE`` refreshes)."""
    table = partitions.holding(session.connection(), "notifications", utcnow())
    return float(
        session.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = :name"), {"name": table}
        ).scalar_one()
    )


@pytest.mark.parametrize("people", [ANALYZE_AFTER_ROWS - 1, ANALYZE_AFTER_ROWS])
def test_a_large_plan_refreshes_the_statistics_of_the_table_it_grew(
    pg_session: Session, people: int
) -> None:
    """Without it, batches that began sending while the table was small keep statements
    planned for a few pages (a sequential scan of the whole table per group, measured at
    15-22 ms a statement at 50,000 rows)."""
    session = pg_session
    locale = f"pl-x{uuid.uuid4().hex[:6]}"  # other tiers' people, committed in this database,
    _people(session, people, locale)  # are not in this campaign's audience
    campaign = _campaign(session, "planning", {"locales": [locale]})
    before = _planned_rows_estimate(session)
    # The planner's own transactions become savepoints of the test's, which is rolled back.
    sessions = sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    published: list[tuple[str, object]] = []
    plan_for_a_while(
        sessions,
        Settings(),
        campaign.id,
        lambda name, *args: published.append((name, args)),
        seconds=60,
    )

    planned = session.scalars(
        select(Notification.id).where(Notification.campaign_id == campaign.id)
    ).all()
    assert len(planned) == people
    assert all(name == TaskName.SEND_CAMPAIGN_BATCH for name, _ in published)
    after = _planned_rows_estimate(session)
    if people >= ANALYZE_AFTER_ROWS:
        assert after >= people  # ANALYZE counted the rows this transaction inserted
    else:
        assert after == before  # a small plan leaves statistics to autovacuum


def _campaign(
    session: Session,
    name: str,
    audience: dict[str, Any],
    status: CampaignStatus = CampaignStatus.RUNNING,
) -> Campaign:
    """A product-update campaign to ``audience``; a running one started at ``NOW``."""
    campaign = Campaign(
        name=name,
        template="product_update",
        category="product_updates",
        data={},
        audience=audience,
        status=status,
        start_at=NOW if status == CampaignStatus.RUNNING else None,
    )
    session.add(campaign)
    session.flush()
    return campaign


def _person(session: Session, locale: str, number: int | str, **fields: Any) -> Recipient:
    """A recipient ``<locale>-<number>`` with an address, in ``locale``, with ``fields``."""
    person = Recipient(
        public_id=f"{locale}-{number}",
        user_id=f"{locale}-{number}",
        email=f"{locale}-{number}@example.com",
        email_hash=f"hash-{locale}-{number}",
        locale=locale,
        created_at=NOW,
        updated_at=NOW,
        **fields,
    )
    session.add(person)
    session.flush()
    return person


def test_an_audience_by_attribute_plans_only_the_people_who_match(session: Session) -> None:
    """Attributes are encrypted: the database returns a superset and each page is decided
    after decryption, on both engines, with pages smaller than the audience."""
    locale = f"pl-a{uuid.uuid4().hex[:6]}"
    plans: list[Any] = ["pro", "free", None, "pro", True, 3, "pro"]
    for number, plan in enumerate(plans):
        attributes = None if plan is None else {"plan": plan, "seats": number}
        _person(session, locale, number, attributes=attributes)
    unreadable = _person(session, locale, "lost")  # a match no data key here decrypts: left out
    stored_under_another_key = under_another_key('{"plan": "pro"}')
    session.execute(
        update(Recipient)
        .where(Recipient.id == unreadable.id)
        .values(attributes=stored_under_another_key)
    )
    campaign = _campaign(
        session, "attributes", {"locales": [locale], "attributes": {"plan": "pro"}}
    )
    narrow = AudienceFilter.from_json(campaign.audience)
    defaults = frozenset({"product_updates"})
    assert audience_size(session, "product_updates", defaults, narrow) == 3
    batches = []
    while (
        batch := plan_next_page(
            session, campaign.id, page_size=2, defaults=defaults, default_timezone="UTC", now=NOW
        )
    ) is not None:
        batches.append(batch.size)
    planned = session.scalars(
        select(Recipient.user_id)
        .join(Notification, Notification.recipient_id == Recipient.id)
        .where(Notification.campaign_id == campaign.id)
        .order_by(Recipient.id)
    ).all()
    assert planned == [f"{locale}-{n}" for n in (0, 3, 6)]
    assert sum(batches) == 3
    assert AudienceFilter(attributes=(("plan", "true"),)).admits({"plan": True})
    assert AudienceFilter(attributes=(("seats", "3"),)).admits({"seats": 3})
    assert not AudienceFilter(attributes=(("plan", "pro"),)).admits(None)


def test_the_fallback_report_passes_over_a_person_no_data_key_decrypts(session: Session) -> None:
    locale = f"pl-f{uuid.uuid4().hex[:6]}"
    people = [
        _person(session, locale, number, first_name=first_name)
        for number, first_name in enumerate(["Ada", None, "lost"])
    ]
    session.execute(
        update(Recipient)
        .where(Recipient.id == people[2].id)
        .values(first_name=under_another_key("Grace"))
    )
    campaign = _campaign(session, "fallbacks", {"locales": [locale]}, CampaignStatus.DRAFT)

    report = fallback_report(session, campaign, frozenset({"product_updates"}), ["first_name"])

    assert (report.scanned, report.complete) == (2, True)
    assert report.lacking == {"first_name": 1}
    assert report.examples == {"first_name": [f"{locale}-1"]}
