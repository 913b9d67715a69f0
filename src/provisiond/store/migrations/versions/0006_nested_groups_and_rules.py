"""nested groups (group_children) and group rules (groups.rule, group_members.source)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 13:06:48.652908
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.tables

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "group_children",
        sa.Column("parent_id", sa.String(length=36), nullable=False),
        sa.Column("child_id", sa.String(length=36), nullable=False),
        sa.Column("added_at", provisiond.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["groups.id"],
            name=op.f("fk_group_children_child_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["groups.id"],
            name=op.f("fk_group_children_parent_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("parent_id", "child_id", name=op.f("pk_group_children")),
    )
    with op.batch_alter_table("group_children", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_children_child_id"), ["child_id"], unique=False)

    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source", sa.String(length=8), server_default=sa.text("'manual'"), nullable=False
            )
        )

    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rule", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("rule")

    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_column("source")

    with op.batch_alter_table("group_children", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_children_child_id"))

    op.drop_table("group_children")
