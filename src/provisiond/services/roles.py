"""An app's roles: define, rename, re-express, delete. Changes re-plan the users they reach."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.domain.roles import NAME_MAX, RoleExpression
from provisiond.errors import Conflict, Invalid, NotFound
from provisiond.services import activity, grants, pushes, runs
from provisiond.services.apps import get_app
from provisiond.services.context import Actor
from provisiond.store.tables import App, AppRole, Assignment, AssignmentRole, utcnow


def list_roles(session: Session, app_id: str) -> Sequence[AppRole]:
    app = get_app(session, app_id)
    return session.scalars(
        select(AppRole).where(AppRole.app_id == app.id).order_by(AppRole.name_key)
    ).all()


def get_role(session: Session, app_id: str, role_id: str) -> AppRole:
    """A role by id or by name (case-insensitive), as the CLI names it."""
    app = get_app(session, app_id)
    role = session.get(AppRole, role_id)
    if role is None or role.app_id != app.id:
        role = _by_name(session, app.id, role_id)
    if role is None:
        raise NotFound(f"app {app.name} defines no role {role_id!r}")
    return role


def _by_name(session: Session, app_id: str, name: str) -> AppRole | None:
    return session.scalar(
        select(AppRole).where(AppRole.app_id == app_id, AppRole.name_key == name.strip().casefold())
    )


def find_roles(session: Session, app: App, refs: Iterable[str]) -> list[AppRole]:
    """The roles ``refs`` name (ids or names), in order; Invalid for one the app lacks."""
    found: dict[str, AppRole] = {}
    for ref in refs:
        role = session.get(AppRole, ref)
        if role is None or role.app_id != app.id:
            role = _by_name(session, app.id, ref)
        if role is None:
            raise Invalid(f"the app {app.name} defines no role {ref!r}", field="role")
        found.setdefault(role.id, role)
    return list(found.values())


def _check_name(session: Session, app: App, name: str, except_id: str | None = None) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise Invalid(f"a role name has 1 to {NAME_MAX} characters", field="name")
    other = _by_name(session, app.id, name)
    if other is not None and other.id != except_id:
        raise Conflict(f"app {app.name} has a role named {other.name!r} already", field="name")
    return name


def create_role(
    session: Session,
    actor: Actor,
    app_id: str,
    *,
    name: str,
    description: str | None,
    expression: RoleExpression | None,
) -> AppRole:
    """A new role; nobody holds it yet, so nobody is re-planned."""
    app = get_app(session, app_id)
    name = _check_name(session, app, name)
    expression = expression or RoleExpression(value=name)
    role = AppRole(
        app_id=app.id,
        name=name,
        name_key=name.casefold(),
        description=description,
        expression=expression.model_dump(mode="json"),
    )
    session.add(role)
    session.flush()
    activity.record(
        session,
        actor,
        "app.role.create",
        f"defined role {name} in {app.name}",
        app_id=app.id,
        targets={"app": app.name, "role": name, "role_id": role.id},
        details={"expression": role.expression, "description": description},
    )
    return role


def update_role(
    session: Session,
    actor: Actor,
    app_id: str,
    role_id: str,
    *,
    changes: dict[str, object],
) -> AppRole:
    """Apply ``changes`` (name, description, expression); re-plan the users who hold it."""
    role = get_role(session, app_id, role_id)
    app = get_app(session, role.app_id)
    diff: dict[str, dict[str, object]] = {}
    if "name" in changes and changes["name"] != role.name:
        name = _check_name(session, app, str(changes["name"]), except_id=role.id)
        diff["name"] = {"old": role.name, "new": name}
        role.name, role.name_key = name, name.casefold()
    if "description" in changes and changes["description"] != role.description:
        new = changes["description"]
        diff["description"] = {"old": role.description, "new": new}
        role.description = None if new is None else str(new)
    if changes.get("expression") is not None:
        expression = RoleExpression.model_validate(changes["expression"]).model_dump(mode="json")
        if expression != role.expression:
            diff["expression"] = {"old": role.expression, "new": expression}
            # The group the role named until now must lose its holders too.
            pushes.enqueue(
                session, actor, app.id, pushes.role_group_ids(session, app.id),
                reason="app.role.update",
            )
            role.expression = expression
    if not diff:
        return role
    role.updated_at = utcnow()
    session.flush()
    users = grants.holders(session, role.id)
    activity.record(
        session,
        actor,
        "app.role.update",
        f"updated role {role.name} of {app.name}",
        app_id=app.id,
        targets={"app": app.name, "role": role.name, "role_id": role.id},
        details={"changes": diff, "users_reached": len(users)},
    )
    runs.reconcile_users(session, actor, app, users, reason="app.role.update")
    return role


def delete_role(session: Session, actor: Actor, app_id: str, role_id: str) -> None:
    """Delete a role no assignment grants; refused (409, listing them) otherwise."""
    role = get_role(session, app_id, role_id)
    app = get_app(session, role.app_id)
    granted_by = session.scalars(
        select(Assignment)
        .join(AssignmentRole, AssignmentRole.assignment_id == Assignment.id)
        .where(AssignmentRole.role_id == role.id)
        .order_by(Assignment.created_at, Assignment.id)
    ).all()
    if granted_by:
        raise Conflict(
            f"role {role.name} is granted by {len(granted_by)} assignment(s) of {app.name}: "
            "change or remove them first",
            assignments=[
                {"id": a.id, "principal_type": a.principal_type, "principal_id": a.principal_id}
                for a in granted_by
            ],
        )
    session.delete(role)
    session.flush()
    activity.record(
        session,
        actor,
        "app.role.delete",
        f"deleted role {role.name} of {app.name}",
        app_id=app.id,
        targets={"app": app.name, "role": role.name, "role_id": role.id},
    )


def roles_of(session: Session, assignment_ids: Sequence[str]) -> dict[str, list[AppRole]]:
    """The roles each assignment grants, sorted by name."""
    out: dict[str, list[AppRole]] = defaultdict(list)
    for start in range(0, len(assignment_ids), 900):
        rows = session.execute(
            select(AssignmentRole.assignment_id, AppRole)
            .join(AppRole, AppRole.id == AssignmentRole.role_id)
            .where(AssignmentRole.assignment_id.in_(assignment_ids[start : start + 900]))
            .order_by(AppRole.name_key)
        ).all()
        for assignment_id, role in rows:
            out[assignment_id].append(role)
    return dict(out)
