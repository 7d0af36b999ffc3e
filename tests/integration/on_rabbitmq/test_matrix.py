"""The delivery and campaign tests again, on RabbitMQ instead of Redis: the same test functions,
collected here, where ``stack``, ``client`` and ``auth`` (this folder's conftest) point at a
stack whose broker is a virtual host of its own on the machine's RabbitMQ (quorum queues,
publisher confirms, retries on the broker's native delayed delivery). Together with the modules
they come from, they form the broker matrix: exactly once, retries with backoff, SIGKILL
mid-send, a group in one task, a campaign exactly once, pause and resume, SIGKILL mid-batch,
the rate limit across workers, a campaign giving way to essential mail, and the lanes: a
security alert not held behind a running 50,000-recipient campaign.

Only what is specific to one broker stays out: the Redis visibility timeout and a flushed Redis
queue (tests/integration/test_sending.py), and the RabbitMQ queue types and delayed exchanges
checked at the bottom of this module.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from notify.queues import ALL_QUEUES
from tests.integration.test_campaigns import (
    On,
    test_a_campaign_gives_way_while_essential_mail_waits_and_still_completes,
    test_a_campaign_reaches_each_subscribed_user_exactly_once_and_nobody_else,
    test_a_security_alert_is_not_delayed_by_a_running_fifty_thousand_campaign,
    test_a_worker_killed_mid_batch_finishes_the_campaign_with_no_one_skipped_and_one_group_twice,
    test_pause_stops_sending_and_resume_finishes_with_no_duplicate_and_no_skip,
    test_the_rate_limit_holds_across_workers,
)
from tests.integration.test_sending import (
    test_a_451_reply_is_retried_with_backoff_and_then_delivered_once,
    test_a_550_reply_fails_at_once_with_its_reason_and_is_never_retried,
    test_a_group_of_notifications_in_one_task_is_sent_once_each_with_its_own_message_id,
    test_a_worker_killed_with_sigkill_mid_send_still_delivers_exactly_once,
    test_each_template_reaches_the_smtp_server_as_a_well_formed_message,
    test_repeating_a_request_with_its_idempotency_key_sends_one_email,
    test_retries_that_never_succeed_end_failed_after_the_configured_attempts,
)
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

MATRIX = (
    test_a_451_reply_is_retried_with_backoff_and_then_delivered_once,
    test_a_550_reply_fails_at_once_with_its_reason_and_is_never_retried,
    test_a_group_of_notifications_in_one_task_is_sent_once_each_with_its_own_message_id,
    test_a_worker_killed_with_sigkill_mid_send_still_delivers_exactly_once,
    test_each_template_reaches_the_smtp_server_as_a_well_formed_message,
    test_repeating_a_request_with_its_idempotency_key_sends_one_email,
    test_retries_that_never_succeed_end_failed_after_the_configured_attempts,
    test_a_campaign_reaches_each_subscribed_user_exactly_once_and_nobody_else,
    test_a_worker_killed_mid_batch_finishes_the_campaign_with_no_one_skipped_and_one_group_twice,
    test_pause_stops_sending_and_resume_finishes_with_no_duplicate_and_no_skip,
    test_the_rate_limit_holds_across_workers,
    test_a_campaign_gives_way_while_essential_mail_waits_and_still_completes,
    test_a_security_alert_is_not_delayed_by_a_running_fifty_thousand_campaign,
)  # collected again here, on RabbitMQ


@pytest.fixture
def on(rabbitmq_stack: Stack, client: TestClient, auth: dict[str, str]) -> On:
    return On(rabbitmq_stack, client, auth)


def test_every_lane_is_a_quorum_queue_and_retries_wait_on_the_broker(
    rabbitmq_stack: Stack, client: TestClient
) -> None:
    """Read back from RabbitMQ itself: each lane a durable quorum queue, and the exchanges of
    native delayed delivery declared, so a countdown is never held in an unacknowledged
    message."""
    from kombu import Connection

    with Connection(rabbitmq_stack.settings.broker_url) as connection:
        channel = connection.channel()
        for lane in ALL_QUEUES:
            # The lane exists (a passive declare of a missing queue is refused with 404) ...
            channel.queue_declare(queue=lane, passive=True)
            # ... and RabbitMQ refuses a declare whose arguments differ from the existing
            # queue's (PRECONDITION_FAILED): this one succeeds only if it is a quorum queue.
            name, _, _ = channel.queue_declare(
                queue=lane,
                passive=False,
                durable=True,
                auto_delete=False,
                arguments={"x-queue-type": "quorum"},
            )
            assert name == lane
        # Native delayed delivery: 28 levels of delay exchanges (celery_delayed_0 … _27).
        channel.exchange_declare("celery_delayed_27", type="topic", durable=True, passive=True)
    assert client.get("/readyz").json()["checks"]["broker"] is True
