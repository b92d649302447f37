"""holdout key

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 07:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaign", sa.Column("holdout_key", sa.String(length=64), nullable=True))
    op.execute("UPDATE campaign SET holdout_key = id")  # what the control draw hashed with until now
    with op.batch_alter_table("campaign") as batch:
        batch.alter_column("holdout_key", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("holdout_key")
