"""billing projections (账单/缴费/欠费/用量) and the interaction timeline

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:21:39.407194
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_kit.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_payment",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("payment_id", sa.String(length=64), nullable=True),
        sa.Column("subscription_id", sa.String(length=64), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=True),
        sa.Column("at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_billing_payment_customer_id_customer")),
        sa.PrimaryKeyConstraint("kind", "id", name=op.f("pk_billing_payment")),
    )
    with op.batch_alter_table("billing_payment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_payment_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_billing_payment_invoice_id"), ["invoice_id"], unique=False)

    op.create_table(
        "invoice",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("billing_period", sa.String(length=7), nullable=False),
        sa.Column("amount_due_fen", sa.BigInteger(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("issued_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_event_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_invoice_customer_id_customer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice")),
    )
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.create_index("ix_invoice_customer_period", ["customer_id", "billing_period"], unique=False)

    op.create_table(
        "invoice_overdue",
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("amount_overdue_fen", sa.BigInteger(), nullable=False),
        sa.Column("days_overdue", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("occurred_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_invoice_overdue_customer_id_customer")),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoice_overdue")),
    )
    with op.batch_alter_table("invoice_overdue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoice_overdue_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "timeline_entry",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("source_event_id", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_timeline_entry_customer_id_customer")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_timeline_entry")),
        sa.UniqueConstraint(
            "customer_id", "source_event_id", name=op.f("uq_timeline_entry_customer_id_source_event_id")
        ),
    )
    with op.batch_alter_table("timeline_entry", schema=None) as batch_op:
        batch_op.create_index(
            "ix_timeline_entry_customer_occurred", ["customer_id", "occurred_at", "seq"], unique=False
        )

    op.create_table(
        "usage_day",
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("usage_date", sa.Date(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("voice_minutes", sa.Integer(), nullable=False),
        sa.Column("sms_count", sa.Integer(), nullable=False),
        sa.Column("data_mb", sa.Integer(), nullable=False),
        sa.Column("roaming", sa.Boolean(), nullable=False),
        sa.Column("roaming_voice_minutes", sa.Integer(), nullable=False),
        sa.Column("roaming_data_mb", sa.Integer(), nullable=False),
        sa.Column("charged_fen", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_usage_day_customer_id_customer")),
        sa.PrimaryKeyConstraint("subscription_id", "usage_date", name=op.f("pk_usage_day")),
    )
    with op.batch_alter_table("usage_day", schema=None) as batch_op:
        batch_op.create_index("ix_usage_day_customer_date", ["customer_id", "usage_date"], unique=False)

    op.create_table(
        "account_standing",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("credit_limit_fen", sa.BigInteger(), nullable=True),
        sa.Column("credit_limit_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("collection_status", sa.String(length=16), nullable=True),
        sa.Column("collection_outstanding_fen", sa.BigInteger(), nullable=True),
        sa.Column("collection_status_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["billing_account.id"], name=op.f("fk_account_standing_account_id_billing_account")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_account_standing_customer_id_customer")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_standing")),
    )
    with op.batch_alter_table("account_standing", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_standing_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("account_standing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_standing_customer_id"))

    op.drop_table("account_standing")
    with op.batch_alter_table("usage_day", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_day_customer_date")

    op.drop_table("usage_day")
    with op.batch_alter_table("timeline_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_timeline_entry_customer_occurred")

    op.drop_table("timeline_entry")
    with op.batch_alter_table("invoice_overdue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_overdue_customer_id"))

    op.drop_table("invoice_overdue")
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_customer_period")

    op.drop_table("invoice")
    with op.batch_alter_table("billing_payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_payment_invoice_id"))
        batch_op.drop_index(batch_op.f("ix_billing_payment_customer_id"))

    op.drop_table("billing_payment")
