"""kombu's SQLAlchemy transport (the embedded ``sqla+`` broker), polling its queues at
``NOTIFY_BROKER_POLL_SECONDS`` instead of kombu's 1 s.

A worker on this transport asks each of its queues for a message in turn and sleeps for the
transport's polling interval once all are empty, so a task can wait that long before a worker
sees it; a campaign waits it at each hop (dispatch, plan, batch). kombu reads the interval
from the ``polling_interval`` transport option, but its SQLAlchemy channel also hands every
transport option to ``create_engine``, which refuses that one. Here the channel makes its
engine from the URL alone, as notify makes every engine (:func:`notify.db.make_engine`: on
SQLite, WAL and a 10 s busy timeout, so a publish waits out a poll's write lock instead of
failing); notify sets no engine options through the broker.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sql

from notify.db import make_engine

TRANSPORT = f"{__name__}:Transport"


class Channel(kombu_sql.Channel):
    def _engine_from_config(self) -> Any:
        return make_engine(self.connection.client.hostname)


class Transport(kombu_sql.Transport):
    Channel = Channel


def install() -> None:
    """Make ``sqla+`` broker URLs use this transport in this process."""
    TRANSPORT_ALIASES["sqla"] = TRANSPORT
