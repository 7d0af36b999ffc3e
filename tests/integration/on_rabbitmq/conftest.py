"""Tests in this folder run against the RabbitMQ stack (:func:`tests.support.stack.
rabbitmq_stack`): ``stack``, ``client`` and ``auth`` are overridden here, so tests imported
from other modules run on RabbitMQ too. The stack shares nothing with the Redis one, so
``make test`` runs this folder beside the fault tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.stack import Stack, make_key


@pytest.fixture(scope="session")
def stack(rabbitmq_stack: Stack) -> Stack:
    return rabbitmq_stack


@pytest.fixture(scope="session")
def client(rabbitmq_stack: Stack) -> Iterator[TestClient]:
    from notify.web.app import create_app

    with TestClient(create_app(rabbitmq_stack.settings), raise_server_exceptions=False) as test:
        yield test


@pytest.fixture(scope="session")
def auth(rabbitmq_stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(rabbitmq_stack.sessions)}"}
