"""user_imports and user_import_rows: a CSV import of users, planned then applied in chunks

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import provisiond.store.tables

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = provisiond.store.tables.UTCDateTime(timezone=True)
    doc = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.create_table(
        "user_imports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("filename", sa.String(length=256), nullable=True),
        sa.Column("options", doc, nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("planned", doc, nullable=False),
        sa.Column("done", doc, nullable=False),
        sa.Column("errors", doc, nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("finished_at", moment, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_imports")),
    )
    op.create_table(
        "user_import_rows",
        sa.Column("import_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("values", doc, nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["user_imports.id"],
            name=op.f("fk_user_import_rows_import_id_user_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "seq", name=op.f("pk_user_import_rows")),
    )


def downgrade() -> None:
    op.drop_table("user_import_rows")
    op.drop_table("user_imports")
