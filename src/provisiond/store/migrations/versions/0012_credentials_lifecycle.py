"""credentials' lifecycle: token expiry, disabled admins, the key canary

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-01 11:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.tables

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "expires_at", provisiond.store.tables.UTCDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "disabled_at", provisiond.store.tables.UTCDateTime(timezone=True), nullable=True
            )
        )
    op.create_table(
        "key_canary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("sealed_at", provisiond.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_canary")),
    )


def downgrade() -> None:
    op.drop_table("key_canary")
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
