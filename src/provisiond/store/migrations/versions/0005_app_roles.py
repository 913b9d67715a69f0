"""app roles (app_roles) and the roles assignments grant (assignment_roles)

The free-text ``assignments.role`` becomes a reference: each distinct role an app's assignments
named (case-insensitively) becomes a role of that app, expressed as a SCIM ``roles`` value equal
to its name, and each assignment grants it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 13:07:59.538005
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import provisiond.store.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_assignments = sa.table(
    "assignments",
    sa.column("id", sa.String),
    sa.column("app_id", sa.String),
    sa.column("role", sa.String),
)
_roles = sa.table(
    "app_roles",
    sa.column("id", sa.String),
    sa.column("app_id", sa.String),
    sa.column("name", sa.String),
    sa.column("name_key", sa.String),
    sa.column("description", sa.Text),
    sa.column("expression", provisiond.store.tables.JSONDoc),
    sa.column("created_at", provisiond.store.tables.UTCDateTime(timezone=True)),
    sa.column("updated_at", provisiond.store.tables.UTCDateTime(timezone=True)),
)
_links = sa.table(
    "assignment_roles", sa.column("assignment_id", sa.String), sa.column("role_id", sa.String)
)


def upgrade() -> None:
    op.create_table(
        "app_roles",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "expression",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", provisiond.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", provisiond.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_roles_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_roles")),
        sa.UniqueConstraint("app_id", "name_key", name=op.f("uq_app_roles_app_id")),
    )
    with op.batch_alter_table("app_roles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_roles_app_id"), ["app_id"], unique=False)

    # Read the texts before the column goes; link only after: SQLite rebuilds ``assignments``
    # to drop a column, and with foreign keys on, dropping the old table would cascade.
    links = _roles_from_assignments()
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("role")

    op.create_table(
        "assignment_roles",
        sa.Column("assignment_id", sa.String(length=36), nullable=False),
        sa.Column("role_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_assignment_roles_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            ["app_roles.id"],
            name=op.f("fk_assignment_roles_role_id_app_roles"),
        ),
        sa.PrimaryKeyConstraint("assignment_id", "role_id", name=op.f("pk_assignment_roles")),
    )
    with op.batch_alter_table("assignment_roles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assignment_roles_role_id"), ["role_id"], unique=False)

    for assignment_id, role_id in links:
        op.get_bind().execute(_links.insert().values(assignment_id=assignment_id, role_id=role_id))


def _roles_from_assignments() -> list[tuple[str, str]]:
    """Each distinct role text of an app becomes its role; returns (assignment, role) links."""
    connection = op.get_bind()
    now = datetime.now(UTC)
    created: dict[tuple[str, str], str] = {}
    links: list[tuple[str, str]] = []
    rows = connection.execute(
        sa.select(_assignments.c.id, _assignments.c.app_id, _assignments.c.role)
        .where(_assignments.c.role.is_not(None))
        .order_by(_assignments.c.app_id, _assignments.c.id)
    ).all()
    for assignment_id, app_id, text in rows:
        name = str(text).strip()
        if not name:
            continue
        key = (app_id, name.casefold())
        if key not in created:
            created[key] = str(uuid.uuid4())
            connection.execute(
                _roles.insert().values(
                    id=created[key],
                    app_id=app_id,
                    name=name,
                    name_key=name.casefold(),
                    description="created by migration 0005 from the role typed on assignments",
                    expression={"kind": "scim_role", "value": name},
                    created_at=now,
                    updated_at=now,
                )
            )
        links.append((assignment_id, created[key]))
    return links


def downgrade() -> None:
    connection = op.get_bind()
    # One role per assignment survives the downgrade: the first by name.
    first: dict[str, str] = {}
    for assignment_id, name in connection.execute(
        sa.select(_links.c.assignment_id, _roles.c.name)
        .join(_roles, _roles.c.id == _links.c.role_id)
        .order_by(_links.c.assignment_id, _roles.c.name_key)
    ):
        first.setdefault(assignment_id, name)
    with op.batch_alter_table("assignment_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignment_roles_role_id"))
    op.drop_table("assignment_roles")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.VARCHAR(length=128), nullable=True))
    for assignment_id, name in first.items():
        connection.execute(
            _assignments.update().where(_assignments.c.id == assignment_id).values(role=name)
        )
    with op.batch_alter_table("app_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_roles_app_id"))
    op.drop_table("app_roles")
