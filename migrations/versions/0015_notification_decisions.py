"""notification decisions

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28 20:50:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import notify.models.base

revision: str = "0015"
down_revision: Union[str, Sequence[str], None] = "0014"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """What was decided for each notification at its claim, for ``/explain``."""
    op.create_table(
        "notification_decisions",
        sa.Column("notification_id", sa.String(length=36), nullable=False),
        sa.Column("decided_at", notify.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_decisions_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("notification_id", name=op.f("pk_notification_decisions")),
    )


def downgrade() -> None:
    op.drop_table("notification_decisions")
