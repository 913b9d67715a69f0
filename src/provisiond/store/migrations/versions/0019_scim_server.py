"""scim_server: SCIM clients with their own tokens; users and groups owned by a SCIM source

Revision ID: 0019
Revises: 0023
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.tables

revision: str = "0019"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = provisiond.store.tables.UTCDateTime(timezone=True)
    op.create_table(
        "scim_clients",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("last_used_at", moment, nullable=True),
        sa.Column("revoked_at", moment, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_clients")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_scim_clients_token_hash")),
    )
    for table in ("users", "groups"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("source", sa.String(length=36), nullable=True))
            batch.add_column(sa.Column("external_id", sa.String(length=256), nullable=True))
            if table == "users":
                batch.add_column(sa.Column("email_type", sa.String(length=32), nullable=True))
        op.create_index(op.f(f"ix_{table}_source"), table, ["source"])
        op.create_index(op.f(f"ix_{table}_external_id"), table, ["external_id"])
    op.create_index(op.f("ix_users_updated_at"), "users", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_users_updated_at"), table_name="users")
    for table in ("users", "groups"):
        op.drop_index(op.f(f"ix_{table}_external_id"), table_name=table)
        op.drop_index(op.f(f"ix_{table}_source"), table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("external_id")
            batch.drop_column("source")
            if table == "users":
                batch.drop_column("email_type")
    op.drop_table("scim_clients")
