"""scanner guard

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-28 21:20:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import notify.models.base

revision: str = "0018"
down_revision: Union[str, Sequence[str], None] = "0017"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Recent presses of the unsubscribe page's button, and sources held for confirmation."""
    op.create_table(
        "page_presses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", notify.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("network_key", sa.String(length=64), nullable=False),
        sa.Column("domain_key", sa.String(length=64), nullable=False),
        sa.Column("early", sa.Boolean(), nullable=False),
        sa.Column("honoured", sa.Boolean(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["recipients.id"],
            name=op.f("fk_page_presses_recipient_id_recipients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_presses")),
    )
    op.create_index("ix_page_presses_domain_at", "page_presses", ["domain_key", "at"])
    op.create_index("ix_page_presses_network_at", "page_presses", ["network_key", "at"])
    op.create_table(
        "scanner_holds",
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("until", notify.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_key", name=op.f("pk_scanner_holds")),
    )


def downgrade() -> None:
    op.drop_table("scanner_holds")
    op.drop_index("ix_page_presses_network_at", table_name="page_presses")
    op.drop_index("ix_page_presses_domain_at", table_name="page_presses")
    op.drop_table("page_presses")
