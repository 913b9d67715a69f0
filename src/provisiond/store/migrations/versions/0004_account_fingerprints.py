"""account fingerprints and task priorities

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="1"))
        batch_op.drop_index("ix_tasks_due")
        batch_op.create_index("ix_tasks_due", ["status", "priority", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_tasks_key", ["app_id", "user_id", "status"], unique=False)
        batch_op.create_index(
            "uq_tasks_running_key",
            ["app_id", "user_id"],
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("uq_tasks_running_key")
        batch_op.drop_index("ix_tasks_key")
        batch_op.drop_index("ix_tasks_due")
        batch_op.create_index("ix_tasks_due", ["status", "next_attempt_at"], unique=False)
        batch_op.drop_column("priority")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("fingerprint")
