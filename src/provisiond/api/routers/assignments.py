from __future__ import annotations

from fastapi import APIRouter, Response

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.schemas import AssignmentCreate, AssignmentOut, Page
from provisiond.authz import Action
from provisiond.services import assignments

router = APIRouter(prefix="/apps/{app_id}/assignments", tags=["assignments"])


@router.get("", dependencies=[requires(Action.APP_READ)])
def list_assignments(app_id: str, rt: RuntimeDep, _: AdminDep) -> Page[AssignmentOut]:
    with rt.db.session() as session:
        rows = assignments.list_assignments(session, app_id)
        return Page[AssignmentOut](items=[AssignmentOut.of(row) for row in rows])


@router.post("", status_code=201, dependencies=[requires(Action.APP_MANAGE)])
def create_assignment(
    app_id: str, body: AssignmentCreate, rt: RuntimeDep, actor: AdminDep, response: Response
) -> AssignmentOut:
    with rt.db.session() as session:
        row = assignments.create_assignment(
            session,
            actor,
            app_id,
            principal_type=body.principal_type,
            principal_id=body.principal_id,
            role=body.role,
            priority=body.priority,
        )
        out = AssignmentOut.of(row)
    response.headers["Location"] = f"/api/v1/apps/{out.app_id}/assignments/{out.id}"
    return out


@router.get("/{assignment_id}", dependencies=[requires(Action.APP_READ)])
def get_assignment(app_id: str, assignment_id: str, rt: RuntimeDep, _: AdminDep) -> AssignmentOut:
    with rt.db.session() as session:
        return AssignmentOut.of(assignments.get_assignment(session, app_id, assignment_id))


@router.delete("/{assignment_id}", status_code=204, dependencies=[requires(Action.APP_MANAGE)])
def delete_assignment(app_id: str, assignment_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Unassign. Users left without any assignment are deprovisioned per the app's action."""
    with rt.db.session() as session:
        assignments.delete_assignment(session, actor, app_id, assignment_id)
