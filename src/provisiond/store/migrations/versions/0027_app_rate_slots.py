"""app_rate_slots: an app's rate limit held across the cluster of workers

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.tables

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_rate_slots",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("next_slot", provisiond.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_rate_slots_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_app_rate_slots")),
    )


def downgrade() -> None:
    op.drop_table("app_rate_slots")
