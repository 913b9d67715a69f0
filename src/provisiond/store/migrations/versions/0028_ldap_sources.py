"""ldap_sources: stored LDAP sources, run on demand or on a schedule, incremental between full runs

Revision ID: 0028
Revises: 0020
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import provisiond.store.tables

revision: str = "0028"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ldap_sources",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("credentials", sa.Text(), nullable=True),
        sa.Column("every_hours", sa.Float(), nullable=True),
        sa.Column("full_every", sa.Integer(), nullable=False),
        sa.Column("runs_since_full", sa.Integer(), nullable=False),
        sa.Column("last_run_at", provisiond.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("high_water", sa.String(length=32), nullable=True),
        sa.Column("created_at", provisiond.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ldap_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_ldap_sources_name")),
    )


def downgrade() -> None:
    op.drop_table("ldap_sources")
