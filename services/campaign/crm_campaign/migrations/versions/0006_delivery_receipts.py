"""delivery receipts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_kit.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("contact", sa.Column("delivery", sa.String(length=16), nullable=True))
    op.add_column("contact", sa.Column("delivery_at", crm_kit.db.UtcDateTime(), nullable=True))
    op.add_column("contact", sa.Column("delivery_error", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact") as batch:
        batch.drop_column("delivery_error")
        batch.drop_column("delivery_at")
        batch.drop_column("delivery")
