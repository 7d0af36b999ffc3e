"""Workers on many hosts: three worker processes started on their own, each with its own node
name as if on three machines (one for essential and periodic with the one beat, one for bulk,
and a spare for bulk and essential), sharing the database, the broker and the Redis rate limit.
One is SIGKILLed in the middle of a campaign.

It runs on the RabbitMQ stack (quorum queues hand a dead worker's unacknowledged batch to the
next at once), beside the fault tier in ``make test``."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from notify.campaigns.batches import group_size
from notify.models import CampaignBatch, Notification
from tests.integration.test_campaigns import (
    create,
    import_users,
    received_per_address,
    tag,
    wait_status,
)
from tests.support.services import WorkerProcess, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
RATE = 30  # messages a second, for the whole campaign across every worker


def test_a_campaign_survives_one_of_three_workers_dying_and_the_shared_rate_limit_holds(
    stack: Stack, client: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:
    stack.worker.stop()
    hosts = {
        "essential": WorkerProcess(stack.env, tmp_path / "a.log", "essential,periodic"),
        "bulk": WorkerProcess(stack.env, tmp_path / "b.log", "bulk", beat=False),
        "spare": WorkerProcess(stack.env, tmp_path / "c.log", "bulk,essential", beat=False),
    }
    for worker in hosts.values():
        worker.start()
    try:
        locale = tag()
        addresses = import_users(client, auth, locale, 300)
        campaign_id = create(client, auth, locale, rate_limit=RATE)
        client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
        wait_until(
            lambda: sum(received_per_address(stack, addresses).values()) >= 60,
            60,
            "the campaign to be well under way",
        )
        hosts["bulk"].kill()  # the bulk host dies mid-batch; the spare carries on
        wait_status(client, auth, campaign_id, "completed", timeout=120)

        got = received_per_address(stack, addresses)
        assert set(got) == set(addresses), "someone was skipped"
        # Only what the dead host had claimed and not recorded may go twice: at most one group
        # per pool process (2). Two live holders of one batch would send far more twice.
        group = group_size(stack.settings.campaign_commit_every, RATE)
        twice = [address for address, count in got.items() if count > 1]
        assert max(got.values()) <= 2
        assert len(twice) <= 2 * group, f"sent twice: {twice}"

        with stack.sessions() as session:
            sent = sorted(
                at
                for at in session.scalars(
                    select(Notification.sent_at).where(Notification.campaign_id == campaign_id)
                )
                if at is not None
            )
            batches = session.scalars(
                select(CampaignBatch.status).where(CampaignBatch.campaign_id == campaign_id)
            ).all()
        assert len(sent) == len(addresses)
        assert Counter(str(status) for status in batches) == Counter({"done": len(batches)})
        busiest = max(sum(1 for at in sent if start <= at < start + timedelta(seconds=1))
                      for start in sent)  # fmt: skip
        # RATE a second across the three hosts, plus the recording lag of one message per
        # pool process that was sending.
        assert busiest <= RATE + 4, f"{busiest} messages in one second"
    finally:
        for worker in hosts.values():
            worker.stop()
