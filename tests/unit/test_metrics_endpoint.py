"""GET /metrics is never public by accident: a bearer token when one is set, open in
development without one, 404 in production without one."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from notify.config import Settings
from notify.migrate import upgrade
from notify.web.app import create_app

TOKEN = "metrics-token-3f9a1c2e7b5d4a60"


def _client(tmp_path: Path, **overrides: str) -> TestClient:
    url = f"sqlite:///{tmp_path / 'notify.sqlite'}"
    upgrade(url)
    settings = Settings(
        database_url=url, broker_url=f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}", **overrides
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_with_a_token_only_that_bearer_token_is_served(tmp_path: Path) -> None:
    with _client(tmp_path, metrics_token=TOKEN) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
        assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 404
        served = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/plain")
    assert "notify_database_up 1.0" in served.text
    assert TOKEN not in served.text


def test_without_a_token_development_serves_and_production_does_not(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        assert client.get("/metrics").status_code == 200
    production = {
        "env": "production",
        "secret_keys": "a-real-secret-key-for-this-test-0123456789abcdef",
        "hash_key": "a-real-hash-key-for-this-test-0123456789abcdef",
        "data_keys": "a-real-data-key-for-this-test-0123456789abcdef",
        "public_url": "https://notify.example.com",
    }
    with _client(tmp_path, **production) as client:
        assert client.get("/metrics").status_code == 404
        assert (
            client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
        )
