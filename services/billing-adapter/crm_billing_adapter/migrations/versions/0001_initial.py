"""ingestion log, quarantine, outbox and inbox

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 17:40:37.219435
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
        "ingestion_log",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("boss_event_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "boss_event_id", name=op.f("pk_ingestion_log")),
        sa.UniqueConstraint("event_id", name=op.f("uq_ingestion_log_event_id")),
    )
    with op.batch_alter_table("ingestion_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingestion_log_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("boss_event_id", sa.String(length=64), nullable=True),
        sa.Column("event_type", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("field", sa.String(length=256), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantine_boss_event_id"), ["boss_event_id"], unique=False)
        batch_op.create_index("ix_quarantine_status_received", ["status", "received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_status_received")
        batch_op.drop_index(batch_op.f("ix_quarantine_boss_event_id"))

    op.drop_table("quarantine")
    with op.batch_alter_table("ingestion_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingestion_log_customer_id"))

    op.drop_table("ingestion_log")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending", postgresql_where=sa.text("sent_at IS NULL"), sqlite_where=sa.text("sent_at IS NULL")
        )

    op.drop_table("outbox")
    op.drop_table("inbox")
