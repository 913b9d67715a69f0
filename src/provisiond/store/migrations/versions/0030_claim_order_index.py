"""tasks: ix_tasks_due holds the claim's whole order (created_at too)

The claim reads due tasks by (priority, next_attempt_at, created_at) up to its window; with
created_at missing from the index, both SQLite and PostgreSQL read and sorted every queued row
for each claim (a temporary B-tree on SQLite, a sort of the whole backlog on PostgreSQL).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_due")
        batch.create_index(
            "ix_tasks_due", ["status", "priority", "next_attempt_at", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_due")
        batch.create_index("ix_tasks_due", ["status", "priority", "next_attempt_at"], unique=False)
