"""work queues and their agents, seeded with one queue per category, the green channel and the escalation queues;
the TMF621 hub's listeners and their deliveries

A queue serves categories and hands tickets out round robin or to the least loaded agent; agents join queues through
the API. Deliveries are staged with the ticket change they report and found by `next_attempt_at` (null once
delivered or given up) by the delivery worker.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 22:20:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import crm_kit.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEEDED = [
    ("billing", "计费争议 Billing disputes", ["billing_dispute"], False, "least_loaded"),
    ("network", "网络覆盖 Network and coverage", ["network_coverage"], False, "least_loaded"),
    ("activation", "业务开通 Service activation", ["service_activation", "value_added_service"], False, "round_robin"),
    ("terminal", "终端 Handsets and terminals", ["handset_terminal"], False, "round_robin"),
    ("broadband", "宽带故障 Broadband faults", ["broadband_fault"], False, "least_loaded"),
    ("portability", "携号转网 Number portability", ["number_portability"], False, "round_robin"),
    ("service-quality", "服务质量 Complaints about staff", ["staff_complaint"], False, "round_robin"),
    ("key-accounts", "大客户绿色通道 Key-account green channel", [], True, "least_loaded"),
    ("supervisors", "值班长 Duty supervisors (first escalation)", [], False, "least_loaded"),
    ("complaints-management", "投诉管理部 Complaints management (second escalation)", [], False, "least_loaded"),
]
"""(id, name, categories, green channel, strategy): a queue for every category, so every new ticket has one; the
green channel takes key accounts' tickets of any category (no categories listed: all of them)."""


def upgrade() -> None:
    queue = op.create_table(
        "queue",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("key_accounts", sa.Boolean(), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("last_assignee", sa.String(length=64), nullable=True),
        sa.Column("created_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("strategy IN ('round_robin', 'least_loaded')", name=op.f("ck_queue_strategy")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue")),
    )
    op.create_table(
        "queue_agent",
        sa.Column("queue_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("max_open", sa.Integer(), nullable=True),
        sa.Column("joined_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queue.id"], name=op.f("fk_queue_agent_queue_id_queue"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("queue_id", "agent_id", name=op.f("pk_queue_agent")),
    )
    with op.batch_alter_table("queue_agent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_queue_agent_agent_id"), ["agent_id"], unique=False)
    op.create_table(
        "hub_subscription",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("callback", sa.String(length=2000), nullable=False),
        sa.Column("query", sa.String(length=1000), nullable=True),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_subscription")),
    )
    op.create_table(
        "hub_delivery",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", crm_kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name=op.f("ck_hub_delivery_state")),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["hub_subscription.id"],
            name=op.f("fk_hub_delivery_subscription_id_hub_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_hub_delivery")),
    )
    with op.batch_alter_table("hub_delivery", schema=None) as batch_op:
        batch_op.create_index("ix_hub_delivery_due", ["next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_hub_delivery_subscription_id"), ["subscription_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hub_delivery_ticket_id"), ["ticket_id"], unique=False)

    now = datetime.now(UTC)
    op.bulk_insert(
        queue,
        [
            {
                "id": id_,
                "name": name,
                "categories": categories,
                "key_accounts": key_accounts,
                "strategy": strategy,
                "created_at": now,
                "updated_at": now,
            }
            for id_, name, categories, key_accounts, strategy in SEEDED
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("hub_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hub_delivery_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_hub_delivery_subscription_id"))
        batch_op.drop_index("ix_hub_delivery_due")
    op.drop_table("hub_delivery")
    op.drop_table("hub_subscription")
    with op.batch_alter_table("queue_agent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queue_agent_agent_id"))
    op.drop_table("queue_agent")
    op.drop_table("queue")
