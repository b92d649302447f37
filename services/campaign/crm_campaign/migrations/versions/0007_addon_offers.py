"""add-on offers

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 10:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("offer", sa.Column("addon_code", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("offer") as batch:
        batch.drop_column("addon_code")
