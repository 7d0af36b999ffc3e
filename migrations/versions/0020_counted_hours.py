"""counted hours

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29 02:20:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import notify.models.base

revision: str = "0020"
down_revision: Union[str, Sequence[str], None] = "0019"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """The hours whose notifications are all in ``daily_counts``. None at first: the periodic
    task counts the finished hours of the retention window after the upgrade, newest first."""
    op.create_table(
        "counted_hours",
        sa.Column("hour", sa.String(length=13), nullable=False),
        sa.Column("counted_at", notify.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_counted_hours")),
    )


def downgrade() -> None:
    # Once an hour is counted its counts sit in daily_counts beside its live rows; without this
    # table the stats would count that hour twice.
    raise NotImplementedError("0020 counts hours into daily_counts; restore a backup to go back")
