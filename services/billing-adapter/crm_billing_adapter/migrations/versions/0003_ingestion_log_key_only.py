"""ingestion log: only its key is indexed (event_id follows from the key; nothing reads by customer)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 05:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingestion_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingestion_log_customer_id"))
        batch_op.drop_constraint(batch_op.f("uq_ingestion_log_event_id"), type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("ingestion_log", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_ingestion_log_event_id"), ["event_id"])
        batch_op.create_index(batch_op.f("ix_ingestion_log_customer_id"), ["customer_id"], unique=False)
