"""user_imports: the applier's lease, so an import interrupted by a restart is resumed

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-01 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.tables

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_imports") as batch:
        batch.add_column(sa.Column("applier", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column(
            "lease_until", provisiond.store.tables.UTCDateTime(timezone=True), nullable=True
        ))


def downgrade() -> None:
    with op.batch_alter_table("user_imports") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("applier")
