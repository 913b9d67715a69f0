"""An app's roles: ``/apps/{id}/roles``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import Page, RoleCreate, RoleOut, RolePatch
from provisiond.authz import Action
from provisiond.services import roles

# Every route loads the app (and most a role) by id: a 404 each.
router = APIRouter(prefix="/apps/{app_id}/roles", tags=["roles"], responses=declare(404))


@router.get("", dependencies=[requires(Action.APP_READ)])
def list_roles(app_id: str, rt: RuntimeDep, _: AdminDep) -> Page[RoleOut]:
    """The roles the app defines, each with the SCIM expression that grants it."""
    with rt.db.session() as session:
        return Page[RoleOut](items=[RoleOut.of(row) for row in roles.list_roles(session, app_id)])


@router.post(
    "", status_code=201, dependencies=[requires(Action.APP_MANAGE)], responses=declare(409)
)
def create_role(
    app_id: str, body: RoleCreate, rt: RuntimeDep, actor: AdminDep, response: Response
) -> RoleOut:
    """Define a role. Without ``expression`` it is a SCIM ``roles`` value equal to its name."""
    with rt.db.session() as session:
        row = roles.create_role(
            session,
            actor,
            app_id,
            name=body.name,
            description=body.description,
            expression=body.expression,
        )
        out = RoleOut.of(row)
    response.headers["Location"] = f"/api/v1/apps/{out.app_id}/roles/{out.id}"
    return out


@router.get("/{role_id}", dependencies=[requires(Action.APP_READ)])
def get_role(app_id: str, role_id: str, rt: RuntimeDep, _: AdminDep) -> RoleOut:
    """One role, by id or name."""
    with rt.db.session() as session:
        return RoleOut.of(roles.get_role(session, app_id, role_id))


@router.patch("/{role_id}", dependencies=[requires(Action.APP_MANAGE)], responses=declare(409))
def update_role(
    app_id: str, role_id: str, body: RolePatch, rt: RuntimeDep, actor: AdminDep
) -> RoleOut:
    """Rename, describe or re-express a role; the users who hold it are reconciled."""
    with rt.db.session() as session:
        changes = body.model_dump(mode="json", exclude_unset=True)
        if changes.get("name", "") is None:
            changes.pop("name")
        return RoleOut.of(roles.update_role(session, actor, app_id, role_id, changes=changes))


@router.delete(
    "/{role_id}",
    status_code=204,
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(409),
)
def delete_role(app_id: str, role_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Delete a role; refused (409, listing them) while assignments grant it."""
    with rt.db.session() as session:
        roles.delete_role(session, actor, app_id, role_id)
