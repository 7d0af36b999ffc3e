"""Housekeeping for the embedded SQL broker (kombu's ``sqla+`` transport), which never deletes
the messages it has delivered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from notify.db import make_engine


def purge_consumed(broker_url: str) -> int:
    """Delete consumed messages from the broker's table; 0 for any other broker."""
    if not broker_url.startswith("sqla+"):
        return 0
    engine = make_engine(broker_url.removeprefix("sqla+"))
    try:
        with engine.begin() as connection:
            result: Any = connection.execute(text("DELETE FROM kombu_message WHERE visible = 0"))
            return int(result.rowcount or 0)
    finally:
        engine.dispose()
