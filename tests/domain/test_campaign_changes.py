"""A campaign change that PostgreSQL rolls back to break a deadlock is made again: a cancel
marks every queued message in one statement while a running batch claims a group in another
order, so the two can wait on each other."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any, cast

import pytest
from celery import Celery
from sqlalchemy import select, text, update

from notify.campaigns import changes
from notify.config import Settings
from notify.db import make_engine, make_session_factory
from notify.models import Campaign, CampaignStatus, Notification, NotificationStatus
from notify.models.base import utcnow
from tests.domain.people import person
from tests.support.services import wait_until, waiting_for_a_lock


def _running_campaign_with_two_queued(sessions: Any) -> tuple[int, str, str]:
    now = utcnow()
    with sessions.begin() as session:
        campaign = Campaign(
            name="deadlock",
            template="product_update",
            category="product_updates",
            data={},
            audience={},
            status=CampaignStatus.RUNNING,
            start_at=now,
            planned_at=now,
        )
        session.add(campaign)
        session.flush()
        ids = []
        for index in range(2):  # the first is first in every order the cancel may read them
            row = Notification(
                recipient_id=person(session, f"deadlock-{index}"),
                template="product_update",
                category="product_updates",
                data={},
                campaign_id=campaign.id,
                status=NotificationStatus.QUEUED,
                created_at=now,
                next_attempt_at=now + timedelta(seconds=index),
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
        return campaign.id, ids[0], ids[1]


def test_a_cancel_that_deadlocks_with_a_claim_is_made_again(
    own_postgres: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = own_postgres
    campaign_id, first, second = _running_campaign_with_two_queued(sessions)
    claim = sessions()  # stands in for a batch claiming its group, the second row first
    claim.begin()
    # PostgreSQL looks for a deadlock in the session whose deadlock_timeout runs out first and
    # rolls that one back: never the claim's here, and the cancel's only after 5 s, when the
    # claim is surely waiting too.
    claim.execute(text("SET LOCAL deadlock_timeout = '60s'"))
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    cancelling = make_session_factory(
        make_engine(url, connect_args={"options": "-c deadlock_timeout=5s"})
    )
    claim.execute(update(Notification).where(Notification.id == second).values(attempts=1))
    failures: list[BaseException] = []

    def cancel() -> None:
        try:
            changes.change(
                cancelling, Settings(), cast(Celery, None), campaign_id, "cancel", actor="test"
            )
        except BaseException as error:
            failures.append(error)

    caplog.set_level(logging.INFO, logger="notify.campaigns.changes")
    thread = threading.Thread(target=cancel)
    thread.start()
    wait_until(lambda: waiting_for_a_lock(sessions), 10, "the cancel to wait for the claim")
    # The claim now wants the first row, which the cancel holds: a deadlock, which PostgreSQL
    # breaks by rolling the cancel back; the claim goes on.
    claim.execute(update(Notification).where(Notification.id == first).values(attempts=1))
    claim.commit()
    claim.close()
    thread.join(30)
    cancelling.kw["bind"].dispose()
    assert not thread.is_alive()
    assert failures == []
    assert "met a deadlock" in caplog.text
    with sessions() as session:
        assert session.get_one(Campaign, campaign_id).status == CampaignStatus.CANCELLED
        statuses = session.scalars(
            select(Notification.status).where(Notification.campaign_id == campaign_id)
        ).all()
    assert statuses == [NotificationStatus.CANCELLED, NotificationStatus.CANCELLED]
