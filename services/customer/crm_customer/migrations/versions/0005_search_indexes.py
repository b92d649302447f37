"""search indexes: billing account ids in byte order, for prefix search on PostgreSQL

Account ids are searched by prefix (`id >= 'A12' AND id < 'A13'`). The primary key's index follows the
database's collation, in which that range need not hold exactly the ids starting with the prefix; an index on
`id COLLATE "C"` (byte order) does, and the search compares `id COLLATE "C"` so the planner uses it. SQLite
compares bytes already, so its primary key serves.

Revision ID: 0005_search_indexes
Revises: 0004
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_search_indexes"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_billing_account_id_c", "billing_account", [sa.text('id COLLATE "C"')])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_billing_account_id_c", table_name="billing_account")
