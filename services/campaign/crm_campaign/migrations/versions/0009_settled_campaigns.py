"""settled campaigns

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_kit.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaign", sa.Column("settled_at", crm_kit.db.UtcDateTime(), nullable=True))
    op.add_column("campaign", sa.Column("treatment_joined_at", crm_kit.db.UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("treatment_joined_at")
        batch.drop_column("settled_at")
