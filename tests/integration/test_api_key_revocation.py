"""A revoked key is refused within NOTIFY_API_KEY_CACHE_SECONDS: at once when it is 0, and
within the default when the web process trusts checked keys for a while."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from notify.config import Settings
from notify.db import make_session_factory, open_database
from notify.migrate import upgrade
from notify.producers.api_keys import create_key, revoke
from notify.web.app import create_app
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("cache_seconds", [0.0, Settings().api_key_cache_seconds])
def test_a_revoked_key_is_refused_within_the_cache_time(
    tmp_path: Path, cache_seconds: float
) -> None:
    database_url = f"sqlite:///{tmp_path / 'keys.sqlite'}"
    upgrade(database_url)
    settings = Settings(
        database_url=database_url,
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
        api_key_cache_seconds=cache_seconds,
    )
    sessions = make_session_factory(open_database(settings))
    with sessions.begin() as session:
        key, secret = create_key(session, "revoked-soon", ["users:read"])
        key_id = key.id
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/users/nobody", headers=headers).status_code == 404
        with sessions.begin() as session:
            assert revoke(session, key_id)
        revoked_at = time.monotonic()
        if cache_seconds == 0:
            assert client.get("/v1/users/nobody", headers=headers).status_code == 401
            return
        wait_until(
            lambda: client.get("/v1/users/nobody", headers=headers).status_code == 401,
            cache_seconds + 2,
            "the revoked key to be refused",
        )
        assert time.monotonic() - revoked_at <= cache_seconds + 2
