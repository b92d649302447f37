"""dispatch lease

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_kit.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaign", sa.Column("dispatch_lease", sa.String(length=32), nullable=True))
    op.add_column("campaign", sa.Column("dispatch_lease_until", crm_kit.db.UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("dispatch_lease_until")
        batch.drop_column("dispatch_lease")
