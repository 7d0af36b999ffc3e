"""status columns typed by enums: CHECK constraints on the allowed values

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

The columns stay VARCHAR(20) holding the same values, so every existing row is kept as it is;
the database now refuses a value that is not a member of the column's enum. Batch mode
rebuilds the tables on SQLite (which cannot add a constraint in place).
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# (table, column, constraint name, allowed values): the values as of this revision, written out
# so the migration never changes when the enums in the code grow.
CHECKS = (
    ('notifications', 'status', 'notification_status',
     ('queued', 'sending', 'sent', 'suppressed', 'failed', 'cancelled')),
    ('campaigns', 'status', 'campaign_status',
     ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled',
      'needs_confirmation')),
    ('campaign_batches', 'status', 'batch_status', ('pending', 'enqueued', 'running', 'done')),
    ('suppressions', 'reason', 'suppression_reason',
     ('hard_bounce', 'complaint', 'operator', 'erased')),
)


def upgrade() -> None:
    for table, column, name, values in CHECKS:
        allowed = ", ".join(f"'{value}'" for value in values)
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_check_constraint(
                op.f(f'ck_{table}_{name}'), f'{column} IN ({allowed})'
            )


def downgrade() -> None:
    for table, _column, name, _values in reversed(CHECKS):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(f'ck_{table}_{name}'), type_='check')
