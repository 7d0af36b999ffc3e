"""personal fields: recipients.first_name, recipients.name and recipients.attributes

Encrypted text, like the address; NULL when the person has not given them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("first_name", "name", "attributes")


def upgrade() -> None:
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.add_column(sa.Column(column, sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
