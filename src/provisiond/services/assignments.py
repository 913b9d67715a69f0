"""Assigning users and groups to apps, with roles. Each change reconciles exactly the users it
reaches.

Group assignments carry a priority (lower wins, engine.roles); two group assignments of one app
may not share one, so a tie cannot be made here (the engine still settles old ones
deterministically).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from provisiond.errors import Conflict, Invalid, NotFound
from provisiond.services import activity, reach, roles, runs
from provisiond.services.apps import get_app
from provisiond.services.context import Actor
from provisiond.services.directory import get_group, get_user
from provisiond.store.tables import App, AppRole, Assignment, AssignmentRole, Run


def list_assignments(session: Session, app_id: str) -> Sequence[Assignment]:
    app = get_app(session, app_id)
    return session.scalars(
        select(Assignment)
        .where(Assignment.app_id == app.id)
        .order_by(Assignment.created_at, Assignment.id)
    ).all()


def get_assignment(session: Session, app_id: str, assignment_id: str) -> Assignment:
    app = get_app(session, app_id)
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.app_id != app.id:
        raise NotFound(f"no assignment {assignment_id!r} in app {app.name}")
    return assignment


def _principal(session: Session, principal_type: str, principal_id: str) -> tuple[str, list[str]]:
    """The principal's display name and the users it reaches."""
    if principal_type == "user":
        user = get_user(session, principal_id)
        return user.login, [user.id]
    group = get_group(session, principal_id)
    return group.name, sorted(reach.group_member_ids(session, [group.id]))


def _check_priority(
    session: Session, app: App, principal_type: str, priority: int | None, except_id: str = ""
) -> None:
    if principal_type != "group" or priority is None:
        return
    other = session.scalar(
        select(Assignment).where(
            Assignment.app_id == app.id,
            Assignment.principal_type == "group",
            Assignment.priority == priority,
            Assignment.id != except_id,
        )
    )
    if other is not None:
        raise Conflict(
            f"another group assignment of {app.name} has priority {priority}: "
            "group priorities must be distinct",
            field="priority",
            assignment_id=other.id,
        )


def _grant(session: Session, assignment: Assignment, granted: Sequence[AppRole]) -> None:
    session.execute(delete(AssignmentRole).where(AssignmentRole.assignment_id == assignment.id))
    session.add_all(AssignmentRole(assignment_id=assignment.id, role_id=r.id) for r in granted)
    session.flush()


def create_assignment(
    session: Session,
    actor: Actor,
    app_id: str,
    *,
    principal_type: str,
    principal_id: str,
    role: str | None = None,
    priority: int | None = None,
    roles_: Sequence[str] = (),
) -> tuple[Assignment, Run | None]:
    """Assign; ``role`` and/or ``roles_`` name the app's roles (by name or id) it grants.

    Returns the assignment and, for a bulk change (or one held by the safety limits), the run
    that reconciles the users it reaches."""
    app = get_app(session, app_id)
    try:
        label, users = _principal(session, principal_type, principal_id)
    except NotFound as exc:
        raise Invalid(exc.detail, field="principal_id") from exc
    granted = roles.find_roles(session, app, [*([role] if role else []), *roles_])
    duplicate = session.scalar(
        select(Assignment).where(
            Assignment.app_id == app.id,
            Assignment.principal_type == principal_type,
            Assignment.principal_id == principal_id,
        )
    )
    if duplicate is not None:
        raise Conflict(
            f"{principal_type} {label} is already assigned to {app.name}",
            assignment_id=duplicate.id,
        )
    _check_priority(session, app, principal_type, priority)
    assignment = Assignment(
        app_id=app.id,
        principal_type=principal_type,
        principal_id=principal_id,
        priority=priority,
    )
    session.add(assignment)
    session.flush()
    _grant(session, assignment, granted)
    activity.record(
        session,
        actor,
        "app.assignment.create",
        f"assigned {principal_type} {label} to {app.name}"
        + (f" as {', '.join(r.name for r in granted)}" if granted else ""),
        app_id=app.id,
        user_id=principal_id if principal_type == "user" else None,
        targets={"app": app.name, principal_type: label, f"{principal_type}_id": principal_id},
        details={
            "users_reached": len(users),
            "roles": [r.name for r in granted],
            "priority": priority,
        },
    )
    run = _reconcile(session, actor, app, users, "app.assignment.create")
    return assignment, run


def update_assignment(
    session: Session,
    actor: Actor,
    app_id: str,
    assignment_id: str,
    *,
    role_refs: Sequence[str] | None = None,
    priority: int | None = None,
    set_priority: bool = False,
) -> Assignment:
    """Change the roles (``role_refs``, when given) and/or the priority (when ``set_priority``)."""
    assignment = get_assignment(session, app_id, assignment_id)
    app = get_app(session, assignment.app_id)
    label, users = _principal(session, assignment.principal_type, assignment.principal_id)
    before = [r.name for r in roles.roles_of(session, [assignment.id]).get(assignment.id, [])]
    changes: dict[str, dict[str, object]] = {}
    if role_refs is not None:
        granted = roles.find_roles(session, app, role_refs)
        after = sorted((r.name for r in granted), key=str.casefold)
        if after != before:
            _grant(session, assignment, granted)
            changes["roles"] = {"old": before, "new": after}
    if set_priority and priority != assignment.priority:
        _check_priority(session, app, assignment.principal_type, priority, assignment.id)
        changes["priority"] = {"old": assignment.priority, "new": priority}
        assignment.priority = priority
        session.flush()
    if not changes:
        return assignment
    activity.record(
        session,
        actor,
        "app.assignment.update",
        f"updated the assignment of {assignment.principal_type} {label} to {app.name}",
        app_id=app.id,
        user_id=assignment.principal_id if assignment.principal_type == "user" else None,
        targets={"app": app.name, assignment.principal_type: label, "assignment_id": assignment.id},
        details={"changes": changes, "users_reached": len(users)},
    )
    _reconcile(session, actor, app, users, "app.assignment.update")
    return assignment


def delete_assignment(session: Session, actor: Actor, app_id: str, assignment_id: str) -> None:
    assignment = get_assignment(session, app_id, assignment_id)
    app = get_app(session, assignment.app_id)
    label, users = _principal(session, assignment.principal_type, assignment.principal_id)
    session.execute(delete(AssignmentRole).where(AssignmentRole.assignment_id == assignment.id))
    session.delete(assignment)
    session.flush()
    activity.record(
        session,
        actor,
        "app.assignment.delete",
        f"unassigned {assignment.principal_type} {label} from {app.name}",
        app_id=app.id,
        user_id=assignment.principal_id if assignment.principal_type == "user" else None,
        targets={"app": app.name, assignment.principal_type: label},
        details={"users_reached": len(users)},
    )
    _reconcile(session, actor, app, users, "app.assignment.delete")


def _reconcile(
    session: Session, actor: Actor, app: App, users: list[str], reason: str
) -> Run | None:
    return runs.reconcile_users(session, actor, app, users, reason=reason)
