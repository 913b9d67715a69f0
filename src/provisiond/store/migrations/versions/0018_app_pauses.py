"""app_pauses: an app paused for the whole cluster (a 429 with Retry-After) or quarantined

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.tables

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = provisiond.store.tables.UTCDateTime(timezone=True)
    op.create_table(
        "app_pauses",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("since", moment, nullable=False),
        sa.Column("until", moment, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("probes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_pauses_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_app_pauses")),
    )


def downgrade() -> None:
    op.drop_table("app_pauses")
