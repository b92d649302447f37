"""sla_clock.warn_at for the SLA scanner's warnings, ticket_transfer.reason for its escalations

The warning instant (预警, 80% of the target) lies on the clock's calendar, business hours included, so it cannot be
computed in SQL from `due_at`: it is stored and indexed like `due_at`, null while a clock is paused or stopped.
Clocks running when this is applied get theirs at their next change; until then they still breach on time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 20:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_kit.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sla_clock", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warn_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_sla_clock_warn_at"), ["warn_at"], unique=False)
    with op.batch_alter_table("ticket_transfer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ticket_transfer", schema=None) as batch_op:
        batch_op.drop_column("reason")
    with op.batch_alter_table("sla_clock", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_clock_warn_at"))
        batch_op.drop_column("warn_at")
