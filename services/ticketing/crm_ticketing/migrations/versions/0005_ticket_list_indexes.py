"""indexes the agent console's lists and the reports need at millions of tickets

Measured on 1M tickets (make bench): a queue's open tickets, an agent's open tickets (and the least-loaded pick that
counts them) and the open tickets of a priority each read their single-column index and then every row it named:
0.2–1.2 s a statement on SQLite. With the status after the queue, the assignee or before the priority, and the
default sort (creation date, id) after both, the count is index-only and the page reads 20 rows. The single-column
indexes on queue, assignee and ticket type are the leading columns of the new ones, so they go. The resolution date
is indexed for the service-quality reports, which read the tickets resolved in a window.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 22:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_queue"))
        batch_op.drop_index(batch_op.f("ix_ticket_assignee"))
        batch_op.drop_index(batch_op.f("ix_ticket_ticket_type"))
        batch_op.create_index(
            "ix_ticket_status_priority_created", ["status", "priority", "creation_date", "id"], unique=False
        )
        batch_op.create_index(
            "ix_ticket_queue_status_created", ["queue", "status", "creation_date", "id"], unique=False
        )
        batch_op.create_index(
            "ix_ticket_assignee_status_created", ["assignee", "status", "creation_date", "id"], unique=False
        )
        batch_op.create_index("ix_ticket_type_created", ["ticket_type", "creation_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_resolution_date"), ["resolution_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_resolution_date"))
        batch_op.drop_index("ix_ticket_type_created")
        batch_op.drop_index("ix_ticket_assignee_status_created")
        batch_op.drop_index("ix_ticket_queue_status_created")
        batch_op.drop_index("ix_ticket_status_priority_created")
        batch_op.create_index(batch_op.f("ix_ticket_ticket_type"), ["ticket_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_assignee"), ["assignee"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_queue"), ["queue"], unique=False)
