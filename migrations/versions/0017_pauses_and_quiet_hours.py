"""pauses and quiet hours

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-28 21:10:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import notify.models.base

revision: str = "0017"
down_revision: Union[str, Sequence[str], None] = "0016"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """A person's pause of an optional category, and their quiet hours for optional mail."""
    op.create_table(
        "pauses",
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("until", notify.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", notify.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["recipients.id"],
            name=op.f("fk_pauses_recipient_id_recipients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recipient_id", "category", name=op.f("pk_pauses")),
    )
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quiet_hours_start", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("quiet_hours_end", sa.String(length=5), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.drop_column("quiet_hours_end")
        batch_op.drop_column("quiet_hours_start")
    op.drop_table("pauses")
