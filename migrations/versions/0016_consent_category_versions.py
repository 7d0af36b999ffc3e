"""consent category versions

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-28 21:00:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: Union[str, Sequence[str], None] = "0015"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """The version of the category's wording each consent event was made under. Events logged
    before stay NULL: which wording they saw was not recorded."""
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category_version", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_column("category_version")
