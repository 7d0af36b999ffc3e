"""campaigns needing attention

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 16:30:00

"""
from typing import Sequence, Union

from alembic import op


revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The allowed values as of this revision and the one before, written out so the migration
# never changes when the enum in the code grows.
BEFORE = ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled',
          'needs_confirmation')
AFTER = (*BEFORE, 'needs_attention')
NAME = 'ck_campaigns_campaign_status'


def _allow(values: tuple[str, ...]) -> None:
    allowed = ", ".join(f"'{value}'" for value in values)
    with op.batch_alter_table('campaigns') as batch_op:
        batch_op.drop_constraint(op.f(NAME), type_='check')
        batch_op.create_check_constraint(op.f(NAME), f'status IN ({allowed})')


def upgrade() -> None:
    _allow(AFTER)


def downgrade() -> None:
    op.execute("UPDATE campaigns SET status = 'paused' WHERE status = 'needs_attention'")
    _allow(BEFORE)
