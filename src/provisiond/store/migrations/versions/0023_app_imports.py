"""app_imports, app_accounts, app_groups: the app's side as an import read it; accounts.drift
(issue 12)

Revision ID: 0023
Revises: 0024
Create Date: 2026-12-01 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import provisiond.store.tables

revision: str = "0023"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = provisiond.store.tables.UTCDateTime(timezone=True)
    doc = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.create_table(
        "app_imports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("correlation_id", sa.String(length=36), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("groups", sa.Integer(), nullable=False),
        sa.Column("repeated", sa.Integer(), nullable=False),
        sa.Column("claimed_total", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("counts", doc, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("started_at", moment, nullable=True),
        sa.Column("finished_at", moment, nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_imports_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_imports")),
    )
    op.create_index(op.f("ix_app_imports_app_id"), "app_imports", ["app_id"])
    op.create_table(
        "app_accounts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("remote_id", sa.String(length=256), nullable=False),
        sa.Column("user_name", sa.String(length=256), nullable=True),
        sa.Column("external_id", sa.String(length=256), nullable=True),
        sa.Column("emails", doc, nullable=False),
        sa.Column("primary_email", sa.String(length=256), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("attributes", doc, nullable=False),
        sa.Column("read_at", moment, nullable=False),
        sa.Column("import_id", sa.String(length=36), nullable=False),
        sa.Column("first_seen_at", moment, nullable=False),
        sa.Column("gone_at", moment, nullable=True),
        sa.Column("match", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("rule", sa.String(length=160), nullable=True),
        sa.Column("candidates", doc, nullable=False),
        sa.Column("ignored_at", moment, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("updated_at", moment, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_accounts_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_accounts")),
        sa.UniqueConstraint("app_id", "remote_id", name=op.f("uq_app_accounts_app_id")),
    )
    op.create_index("ix_app_accounts_app_match", "app_accounts", ["app_id", "match"])
    op.create_index(op.f("ix_app_accounts_user_id"), "app_accounts", ["user_id"])
    op.create_table(
        "app_groups",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("remote_id", sa.String(length=256), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("members", doc, nullable=False),
        sa.Column("read_at", moment, nullable=False),
        sa.Column("import_id", sa.String(length=36), nullable=False),
        sa.Column("gone_at", moment, nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_groups_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", "remote_id", name=op.f("pk_app_groups")),
    )


    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("drift", doc, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("drift")
    op.drop_table("app_groups")
    op.drop_index(op.f("ix_app_accounts_user_id"), table_name="app_accounts")
    op.drop_index("ix_app_accounts_app_match", table_name="app_accounts")
    op.drop_table("app_accounts")
    op.drop_index(op.f("ix_app_imports_app_id"), table_name="app_imports")
    op.drop_table("app_imports")
