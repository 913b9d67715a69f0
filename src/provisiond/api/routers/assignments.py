from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import AssignmentCreate, AssignmentOut, AssignmentPatch, Page
from provisiond.authz import Action
from provisiond.errors import Invalid
from provisiond.services import assignments, roles
from provisiond.store.tables import Assignment

# Every route loads the app (and most an assignment) by id: a 404 each.
router = APIRouter(
    prefix="/apps/{app_id}/assignments", tags=["assignments"], responses=declare(404)
)


def _out(session: Session, rows: list[Assignment]) -> list[AssignmentOut]:
    granted = roles.roles_of(session, [row.id for row in rows])
    return [AssignmentOut.of(row, granted.get(row.id, [])) for row in rows]


@router.get("", dependencies=[requires(Action.APP_READ)])
def list_assignments(app_id: str, rt: RuntimeDep, _: AdminDep) -> Page[AssignmentOut]:
    """The users and groups assigned to the app, with the roles each grants."""
    with rt.db.session() as session:
        rows = list(assignments.list_assignments(session, app_id))
        return Page[AssignmentOut](items=_out(session, rows))


@router.post(
    "", status_code=201, dependencies=[requires(Action.APP_MANAGE)], responses=declare(409)
)
def create_assignment(
    app_id: str, body: AssignmentCreate, rt: RuntimeDep, actor: AdminDep, response: Response
) -> AssignmentOut:
    """Assign a user or a group, with the app roles it grants (``role`` or ``roles``)."""
    with rt.db.session() as session:
        row, run = assignments.create_assignment(
            session,
            actor,
            app_id,
            principal_type=body.principal_type,
            principal_id=body.principal_id,
            role=body.role,
            roles_=body.roles,
            priority=body.priority,
        )
        (out,) = _out(session, [row])
    response.headers["Location"] = f"/api/v1/apps/{out.app_id}/assignments/{out.id}"
    return out.model_copy(update={"run_id": run.id if run is not None else None})


@router.get("/{assignment_id}", dependencies=[requires(Action.APP_READ)])
def get_assignment(app_id: str, assignment_id: str, rt: RuntimeDep, _: AdminDep) -> AssignmentOut:
    """One assignment."""
    with rt.db.session() as session:
        (out,) = _out(session, [assignments.get_assignment(session, app_id, assignment_id)])
        return out


@router.patch(
    "/{assignment_id}", dependencies=[requires(Action.APP_MANAGE)], responses=declare(409)
)
def update_assignment(
    app_id: str, assignment_id: str, body: AssignmentPatch, rt: RuntimeDep, actor: AdminDep
) -> AssignmentOut:
    """Change the roles and/or the priority; the users it reaches are reconciled."""
    given = body.model_fields_set
    if {"role", "roles"} <= given:
        raise Invalid("give role or roles, not both", field="roles")
    refs: list[str] | None = None
    if "roles" in given:
        refs = list(body.roles or [])
    elif "role" in given:
        refs = [body.role] if body.role else []
    with rt.db.session() as session:
        row = assignments.update_assignment(
            session,
            actor,
            app_id,
            assignment_id,
            role_refs=refs,
            priority=body.priority,
            set_priority="priority" in given,
        )
        (out,) = _out(session, [row])
        return out


@router.delete("/{assignment_id}", status_code=204, dependencies=[requires(Action.APP_MANAGE)])
def delete_assignment(app_id: str, assignment_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Unassign. Users left without any assignment are deprovisioned per the app's action."""
    with rt.db.session() as session:
        assignments.delete_assignment(session, actor, app_id, assignment_id)
