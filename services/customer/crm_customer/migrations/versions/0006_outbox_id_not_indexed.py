"""outbox: no unique index on the event id

The id is unique by construction (a fresh uuid4 for every event this service stages), consumers de-duplicate by
it, and nothing looks an outbox row up by it. A unique index over random UUIDs makes every insert a write at a
random place in one more B-tree: it doubled the cost of staging a 5,000-event batch (a segment's members).

Revision ID: 0006
Revises: 0005_search_indexes
Create Date: 2026-11-24 17:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005_search_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_outbox_id"), type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_outbox_id"), ["id"])
