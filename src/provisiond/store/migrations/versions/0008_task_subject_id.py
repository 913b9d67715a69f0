"""tasks.user_id becomes tasks.subject_id: it holds a user id or a directory group id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 09:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The partial unique indexes and the key index name the column; both databases rename the
# column in place (SQLite >= 3.25, PostgreSQL) and keep those indexes pointing at it. Only the
# single-column index carries the old name, so it is made again under the new one.


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None, recreate="never") as batch_op:
        batch_op.drop_index("ix_tasks_user_id")
        batch_op.alter_column("user_id", new_column_name="subject_id")
        batch_op.create_index("ix_tasks_subject_id", ["subject_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None, recreate="never") as batch_op:
        batch_op.drop_index("ix_tasks_subject_id")
        batch_op.alter_column("subject_id", new_column_name="user_id")
        batch_op.create_index("ix_tasks_user_id", ["user_id"], unique=False)
