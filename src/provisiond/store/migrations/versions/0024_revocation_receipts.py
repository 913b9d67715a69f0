"""revocations and signing_keys: what an app showed after a deprovisioning, and the receipts' key

Revision ID: 0024
Revises: 0027
Create Date: 2026-12-01 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.tables

revision: str = "0024"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = provisiond.store.tables.UTCDateTime(timezone=True)
    op.create_table(
        "revocations",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("remote_id", sa.String(length=256), nullable=False),
        sa.Column("applied_at", moment, nullable=False),
        sa.Column("read_state", sa.String(length=16), nullable=False),
        sa.Column("read_at", moment, nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("correlation_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_revocations_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", "user_id", name=op.f("pk_revocations")),
    )
    op.create_index(op.f("ix_revocations_user_id"), "revocations", ["user_id"])
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("retired_at", moment, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_index(op.f("ix_revocations_user_id"), table_name="revocations")
    op.drop_table("revocations")
