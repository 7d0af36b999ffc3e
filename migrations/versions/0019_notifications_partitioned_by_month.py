"""notifications partitioned by month

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-28 23:50:00

"""

from datetime import UTC, date, datetime
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import notify.models.base

revision: str = "0019"
down_revision: Union[str, Sequence[str], None] = "0018"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_NOTIFICATION_INDEXES = {
    "ix_notifications_batch_status": "(batch_id, status)",
    "ix_notifications_created_at": "(created_at)",
    "ix_notifications_recipient_id": "(recipient_id)",
    "ix_notifications_status_due": "(status, next_attempt_at)",
}


def upgrade() -> None:
    """Idempotency keys move to a table of their own; a campaign's messages share its planning
    time; on PostgreSQL ``notifications`` and ``notification_decisions`` become partitioned by
    month, every row copied into its month."""
    op.create_table(
        "idempotency_keys",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("notification_id", sa.String(length=36), nullable=False),
        sa.Column(
            "notification_created_at", notify.models.base.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_idempotency_keys_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "idempotency_key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "ix_idempotency_keys_notification_id", "idempotency_keys", ["notification_id"]
    )
    op.create_index(
        "ix_idempotency_keys_notification_created_at",
        "idempotency_keys",
        ["notification_created_at"],
    )
    op.execute(
        "INSERT INTO idempotency_keys "
        "(api_key_id, idempotency_key, request_hash, notification_id, notification_created_at) "
        "SELECT api_key_id, idempotency_key, coalesce(request_hash, ''), id, created_at "
        "FROM notifications WHERE api_key_id IS NOT NULL AND idempotency_key IS NOT NULL"
    )
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(
            sa.Column("planned_at", notify.models.base.UtcDateTime(timezone=True), nullable=True)
        )
    # A campaign planned in part goes on with the date of its first rows.
    op.execute(
        "UPDATE campaigns SET planned_at = (SELECT min(created_at) FROM notifications "
        "WHERE notifications.campaign_id = campaigns.id) WHERE planned_at IS NULL"
    )
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("uq_notifications_api_key_id_idempotency_key", type_="unique")
        batch.drop_constraint("uq_notifications_campaign_id_recipient_id", type_="unique")
        batch.drop_column("idempotency_key")
        batch.drop_column("request_hash")
    if op.get_bind().dialect.name == "postgresql":
        _partition_on_postgresql()
    else:
        _rebuild_decisions_on_sqlite()
        with op.batch_alter_table("notifications") as batch:
            batch.create_unique_constraint(
                op.f("uq_notifications_campaign_id_recipient_id_created_at"),
                ["campaign_id", "recipient_id", "created_at"],
            )


def _partition_on_postgresql() -> None:
    connection = op.get_bind()
    op.execute("ALTER TABLE notifications RENAME TO notifications_unpartitioned")
    op.execute(
        "CREATE TABLE notifications (LIKE notifications_unpartitioned "
        "INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (created_at)"
    )
    op.execute("ALTER TABLE notification_decisions RENAME TO notification_decisions_unpartitioned")
    op.execute(
        "CREATE TABLE notification_decisions ("
        "notification_id VARCHAR(36) NOT NULL, "
        "notification_created_at TIMESTAMP WITH TIME ZONE NOT NULL, "
        "decided_at TIMESTAMP WITH TIME ZONE NOT NULL, "
        "record JSON NOT NULL) PARTITION BY RANGE (notification_created_at)"
    )
    now = datetime.now(UTC)
    oldest = connection.scalar(sa.text("SELECT min(created_at) FROM notifications_unpartitioned"))
    _make_months(_month_of(oldest or now), _month_of(now), months_ahead=3)
    op.execute("INSERT INTO notifications SELECT * FROM notifications_unpartitioned")
    op.execute(
        "INSERT INTO notification_decisions "
        "SELECT d.notification_id, n.created_at, d.decided_at, d.record "
        "FROM notification_decisions_unpartitioned d "
        "JOIN notifications_unpartitioned n ON n.id = d.notification_id"
    )
    op.execute("DROP TABLE notification_decisions_unpartitioned")
    op.execute("DROP TABLE notifications_unpartitioned")
    op.execute(
        "ALTER TABLE notifications ADD CONSTRAINT pk_notifications PRIMARY KEY (id, created_at)"
    )
    op.execute(
        "ALTER TABLE notifications ADD CONSTRAINT "
        "uq_notifications_campaign_id_recipient_id_created_at "
        "UNIQUE (campaign_id, recipient_id, created_at)"
    )
    for name, columns in _NOTIFICATION_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON notifications {columns}")
    op.execute(
        "ALTER TABLE notifications ADD CONSTRAINT fk_notifications_api_key_id_api_keys "
        "FOREIGN KEY (api_key_id) REFERENCES api_keys (id)"
    )
    op.execute(
        "ALTER TABLE notifications ADD CONSTRAINT fk_notifications_recipient_id_recipients "
        "FOREIGN KEY (recipient_id) REFERENCES recipients (id)"
    )
    op.execute(
        "ALTER TABLE notifications ADD CONSTRAINT fk_notifications_campaign_id_campaigns "
        "FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE notifications ADD CONSTRAINT fk_notifications_batch_id_campaign_batches "
        "FOREIGN KEY (batch_id) REFERENCES campaign_batches (id) ON DELETE SET NULL"
    )
    op.execute(
        "ALTER TABLE notification_decisions ADD CONSTRAINT pk_notification_decisions "
        "PRIMARY KEY (notification_id, notification_created_at)"
    )
    op.execute("ANALYZE notifications")


def _month_of(moment: datetime) -> date:
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _make_months(first: date, current: date, *, months_ahead: int) -> None:
    """The default partitions, and one per month from ``first`` to ``months_ahead`` past
    ``current``, named as ``notify.partitions`` names them (written out here, so this migration
    stays what it was whatever that module becomes)."""
    for table in ("notifications", "notification_decisions"):
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    last = current
    for _ in range(months_ahead):
        last = _next_month(last)
    month = first
    while month <= last:
        start, end = month.isoformat(), _next_month(month).isoformat()
        for table in ("notifications", "notification_decisions"):
            op.execute(
                f"CREATE TABLE {table}_p{month:%Y_%m} PARTITION OF {table} "
                f"FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"
            )
        month = _next_month(month)


def _rebuild_decisions_on_sqlite() -> None:
    op.create_table(
        "notification_decisions_next",
        sa.Column("notification_id", sa.String(length=36), nullable=False),
        sa.Column(
            "notification_created_at", notify.models.base.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("decided_at", notify.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(
            "notification_id", "notification_created_at", name="pk_notification_decisions"
        ),
    )
    op.execute(
        "INSERT INTO notification_decisions_next "
        "SELECT d.notification_id, n.created_at, d.decided_at, d.record "
        "FROM notification_decisions d JOIN notifications n ON n.id = d.notification_id"
    )
    op.drop_table("notification_decisions")
    op.rename_table("notification_decisions_next", "notification_decisions")


def downgrade() -> None:
    raise NotImplementedError("0019 partitions the data; restore a backup to go back")
