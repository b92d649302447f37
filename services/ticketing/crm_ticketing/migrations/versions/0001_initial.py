"""tickets, status history, notes, transfers, SLA clocks, customer standing, outbox and inbox

The list filters and sorts each have an index on the ticket; `sla_clock.due_at` is indexed for the scanner that
looks for running clocks that are due (it is null while a clock is paused or stopped).

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 19:49:40.661906
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
        "customer_standing",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("key_account", sa.Boolean(), nullable=False),
        sa.Column("key_account_tier", sa.String(length=16), nullable=True),
        sa.Column("account_manager", sa.String(length=128), nullable=True),
        sa.Column("last_event_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("erased_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("merged_into", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_standing")),
    )
    with op.batch_alter_table("customer_standing", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_standing_account_manager"), ["account_manager"], unique=False)

    op.create_table(
        "ticket",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=True),
        sa.Column("customer_referred_type", sa.String(length=64), nullable=False),
        sa.Column("ticket_type", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_change_date", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("status_change_reason", sa.String(length=300), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("channel_name", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("sla_policy_id", sa.String(length=64), nullable=False),
        sa.Column("key_account", sa.Boolean(), nullable=False),
        sa.Column("related_parties", sa.JSON(), nullable=False),
        sa.Column("related_entities", sa.JSON(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("external_identifiers", sa.JSON(), nullable=False),
        sa.Column("creation_date", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_update", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expected_resolution_date", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("requested_resolution_date", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("resolution_date", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("first_responded_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("csat_score", sa.Integer(), nullable=True),
        sa.Column("csat_comment", sa.String(length=500), nullable=True),
        sa.Column("csat_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("duplicate_of", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["duplicate_of"], ["ticket.id"], name=op.f("fk_ticket_duplicate_of_ticket"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket")),
    )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_assignee"), ["assignee"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_channel"), ["channel"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_creation_date"), ["creation_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_duplicate_of"), ["duplicate_of"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_priority"), ["priority"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_queue"), ["queue"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_ticket_type"), ["ticket_type"], unique=False)

    op.create_table(
        "sla_clock",
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target_seconds", sa.Integer(), nullable=False),
        sa.Column("calendar", sa.String(length=32), nullable=False),
        sa.Column("started_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("accumulated_us", sa.BigInteger(), nullable=False),
        sa.Column("running_since", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("paused_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("breached_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("warned_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("due_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('first_response', 'resolution')", name=op.f("ck_sla_clock_kind")),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_sla_clock_ticket_id_ticket"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "kind", name=op.f("pk_sla_clock")),
    )
    with op.batch_alter_table("sla_clock", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_clock_due_at"), ["due_at"], unique=False)

    op.create_table(
        "ticket_note",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("date", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_ticket_note_ticket_id_ticket"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ticket_note")),
    )
    with op.batch_alter_table("ticket_note", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_note_ticket_seq", ["ticket_id", "seq"], unique=False)

    op.create_table(
        "ticket_status_change",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("change_date", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("change_reason", sa.String(length=300), nullable=True),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_ticket_status_change_ticket_id_ticket"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ticket_status_change")),
    )
    with op.batch_alter_table("ticket_status_change", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_status_change_ticket_seq", ["ticket_id", "seq"], unique=False)

    op.create_table(
        "ticket_transfer",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("from_queue", sa.String(length=64), nullable=True),
        sa.Column("to_queue", sa.String(length=64), nullable=True),
        sa.Column("from_assignee", sa.String(length=64), nullable=True),
        sa.Column("to_assignee", sa.String(length=64), nullable=True),
        sa.Column("transferred_by", sa.String(length=128), nullable=False),
        sa.Column("transferred_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_ticket_transfer_ticket_id_ticket"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ticket_transfer")),
    )
    with op.batch_alter_table("ticket_transfer", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_transfer_ticket_seq", ["ticket_id", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket_transfer", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_transfer_ticket_seq")

    op.drop_table("ticket_transfer")
    with op.batch_alter_table("ticket_status_change", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_status_change_ticket_seq")

    op.drop_table("ticket_status_change")
    with op.batch_alter_table("ticket_note", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_note_ticket_seq")

    op.drop_table("ticket_note")
    with op.batch_alter_table("sla_clock", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_clock_due_at"))

    op.drop_table("sla_clock")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_ticket_type"))
        batch_op.drop_index(batch_op.f("ix_ticket_status"))
        batch_op.drop_index(batch_op.f("ix_ticket_queue"))
        batch_op.drop_index(batch_op.f("ix_ticket_priority"))
        batch_op.drop_index(batch_op.f("ix_ticket_duplicate_of"))
        batch_op.drop_index(batch_op.f("ix_ticket_customer_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_creation_date"))
        batch_op.drop_index(batch_op.f("ix_ticket_channel"))
        batch_op.drop_index(batch_op.f("ix_ticket_category"))
        batch_op.drop_index(batch_op.f("ix_ticket_assignee"))

    op.drop_table("ticket")
    with op.batch_alter_table("customer_standing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_standing_account_manager"))

    op.drop_table("customer_standing")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending", postgresql_where=sa.text("sent_at IS NULL"), sqlite_where=sa.text("sent_at IS NULL")
        )

    op.drop_table("outbox")
    op.drop_table("inbox")
