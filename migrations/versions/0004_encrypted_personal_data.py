"""encrypted personal data: recipients.email and notifications.data become encrypted text

Existing rows are encrypted here with the newest of NOTIFY_DATA_KEYS.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _encrypt_existing(table: str, column: str) -> None:
    from notify.config import load_settings
    from notify.crypto import keyring

    ring = keyring(load_settings().data_key_list)
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")  # noqa: S608
    ).all()
    for row_id, value in rows:
        token = ring.encrypt(str(value).encode("utf-8")).decode("ascii")
        connection.execute(
            sa.text(f"UPDATE {table} SET {column} = :token WHERE id = :id"),  # noqa: S608
            {"token": token, "id": row_id},
        )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column(
            "data",
            existing_type=sa.JSON(),
            type_=sa.Text(),
            existing_nullable=False,
            **({"postgresql_using": "data::text"} if postgres else {}),
        )
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.alter_column(
            "email", existing_type=sa.String(length=320), type_=sa.Text(), existing_nullable=True
        )
    _encrypt_existing("notifications", "data")
    _encrypt_existing("recipients", "email")


def downgrade() -> None:
    raise NotImplementedError("decrypting personal data back into clear text is not supported")
