"""initial

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 17:40:56.999896
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_kit.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("processed_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("aggregatetype", sa.String(length=128), nullable=False),
        sa.Column("aggregateid", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("sent_at IS NULL"),
            sqlite_where=sa.text("sent_at IS NULL"),
        )

    op.create_table(
        "customer",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("customer_type", sa.String(length=16), nullable=True),
        sa.Column("id_card_no", sa.String(length=18), nullable=True),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer")),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_id_card_no"), ["id_card_no"], unique=False)
        batch_op.create_index(batch_op.f("ix_customer_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_customer_region"), ["region"], unique=False)
        batch_op.create_index(batch_op.f("ix_customer_status"), ["status"], unique=False)

    op.create_table(
        "billing_account",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_billing_account_customer_id_customer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_account")),
    )
    with op.batch_alter_table("billing_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_account_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "subscription",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("msisdn", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=32), nullable=True),
        sa.Column("plan_code", sa.String(length=32), nullable=True),
        sa.Column("plan_name", sa.String(length=100), nullable=True),
        sa.Column("monthly_fee_fen", sa.Integer(), nullable=True),
        sa.Column("payment_mode", sa.String(length=16), nullable=True),
        sa.Column("activated_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("contract_end", sa.Date(), nullable=True),
        sa.Column("dealer_code", sa.String(length=32), nullable=True),
        sa.Column("recipient_operator", sa.String(length=32), nullable=True),
        sa.Column("last_event_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["billing_account.id"], name=op.f("fk_subscription_account_id_billing_account")
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_subscription_customer_id_customer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription")),
    )
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscription_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscription_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscription_msisdn"), ["msisdn"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscription_msisdn"))
        batch_op.drop_index(batch_op.f("ix_subscription_customer_id"))
        batch_op.drop_index(batch_op.f("ix_subscription_account_id"))

    op.drop_table("subscription")
    with op.batch_alter_table("billing_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_account_customer_id"))

    op.drop_table("billing_account")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_status"))
        batch_op.drop_index(batch_op.f("ix_customer_region"))
        batch_op.drop_index(batch_op.f("ix_customer_name"))
        batch_op.drop_index(batch_op.f("ix_customer_id_card_no"))

    op.drop_table("customer")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending", postgresql_where=sa.text("sent_at IS NULL"), sqlite_where=sa.text("sent_at IS NULL")
        )

    op.drop_table("outbox")
    op.drop_table("inbox")
