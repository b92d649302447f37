"""consents and do-not-disturb (营销授权/免打扰), with their append-only history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:11:16.417084
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
    op.create_table(
        "consent",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_consent_customer_id_customer")),
        sa.PrimaryKeyConstraint("customer_id", "channel", "purpose", name=op.f("pk_consent")),
    )
    op.create_table(
        "consent_history",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=True),
        sa.Column("granted", sa.Boolean(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("until", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("changed_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_consent_history_customer_id_customer")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_consent_history")),
    )
    with op.batch_alter_table("consent_history", schema=None) as batch_op:
        batch_op.create_index("ix_consent_history_customer_seq", ["customer_id", "seq"], unique=False)

    op.create_table(
        "do_not_disturb",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("until", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_do_not_disturb_customer_id_customer")),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_do_not_disturb")),
    )


def downgrade() -> None:
    op.drop_table("do_not_disturb")
    with op.batch_alter_table("consent_history", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_history_customer_seq")

    op.drop_table("consent_history")
    op.drop_table("consent")
