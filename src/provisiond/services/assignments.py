"""Assigning users and groups to apps. Each change reconciles exactly the users it reaches."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.errors import Conflict, NotFound
from provisiond.services import activity, reach, runs
from provisiond.services.apps import get_app
from provisiond.services.context import Actor
from provisiond.services.directory import get_group, get_user
from provisiond.store.tables import App, Assignment


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


def create_assignment(
    session: Session,
    actor: Actor,
    app_id: str,
    *,
    principal_type: str,
    principal_id: str,
    role: str | None,
    priority: int | None,
) -> Assignment:
    app = get_app(session, app_id)
    label, users = _principal(session, principal_type, principal_id)
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
    assignment = Assignment(
        app_id=app.id,
        principal_type=principal_type,
        principal_id=principal_id,
        role=role,
        priority=priority,
    )
    session.add(assignment)
    session.flush()
    activity.record(
        session,
        actor,
        "app.assignment.create",
        f"assigned {principal_type} {label} to {app.name}",
        app_id=app.id,
        user_id=principal_id if principal_type == "user" else None,
        targets={"app": app.name, principal_type: label, f"{principal_type}_id": principal_id},
        details={"users_reached": len(users)},
    )
    _reconcile(session, actor, app, users, "app.assignment.create")
    return assignment


def delete_assignment(session: Session, actor: Actor, app_id: str, assignment_id: str) -> None:
    assignment = get_assignment(session, app_id, assignment_id)
    app = get_app(session, assignment.app_id)
    label, users = _principal(session, assignment.principal_type, assignment.principal_id)
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


def _reconcile(session: Session, actor: Actor, app: App, users: list[str], reason: str) -> None:
    runs.reconcile_users(session, actor, app, users, reason=reason)
