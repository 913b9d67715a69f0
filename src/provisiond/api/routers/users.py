from __future__ import annotations

from fastapi import APIRouter, Query, Response

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import Page, UserCreate, UserOut, UserPatch
from provisiond.authz import Action
from provisiond.domain.directory import Lifecycle, UserStatus
from provisiond.services import directory
from provisiond.services.inbound import ownership

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", dependencies=[requires(Action.DIRECTORY_READ)])
def list_users(
    rt: RuntimeDep,
    _: AdminDep,
    status: UserStatus | None = None,
    q: str | None = Query(default=None, max_length=256, description="Login contains"),
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = None,
) -> Page[UserOut]:
    """The directory's users by login, a page at a time (``next_cursor`` fetches the next)."""
    with rt.db.session() as session:
        rows, next_cursor = directory.list_users(
            session, status=status.value if status else None, q=q, limit=limit, after=cursor
        )
        return Page[UserOut](items=[UserOut.of(u) for u in rows], next_cursor=next_cursor)


@router.post(
    "", status_code=201, dependencies=[requires(Action.DIRECTORY_WRITE)], responses=declare(409)
)
def create_user(body: UserCreate, rt: RuntimeDep, actor: AdminDep, response: Response) -> UserOut:
    """Add a user (409 if the login is taken); active unless ``activate`` is false."""
    with rt.db.session() as session:
        user = directory.create_user(session, actor, body.profile, activate=body.activate)
        out = UserOut.of(user)
    response.headers["Location"] = f"/api/v1/users/{out.id}"
    return out


@router.get("/{user_id}", dependencies=[requires(Action.DIRECTORY_READ)], responses=declare(404))
def get_user(user_id: str, rt: RuntimeDep, _: AdminDep) -> UserOut:
    """One user, with its whole profile."""
    with rt.db.session() as session:
        return UserOut.of(directory.get_user(session, user_id))


@router.patch(
    "/{user_id}", dependencies=[requires(Action.DIRECTORY_WRITE)], responses=declare(404, 409)
)
def update_user(
    user_id: str, body: UserPatch, rt: RuntimeDep, actor: AdminDep, response: Response
) -> UserOut:
    """Change profile attributes (null removes one); the user's apps are reconciled.

    Attributes a SCIM client owns (the user's ``source``) are warned of in a ``Warning``
    header, or refused with 409 (``PROVISIOND_SCIM_SOURCE_EDITS=refuse``)."""
    with rt.db.session() as session:
        user = directory.get_user(session, user_id)
        warning = ownership.check_admin_edit(
            session, user, body.profile, rt.settings.scim_source_edits
        )
        if warning:
            text = warning.replace('"', "'").encode("ascii", "replace").decode()
            response.headers["Warning"] = f'299 provisiond "{text}"'
        return UserOut.of(directory.update_user(session, actor, user_id, body.profile))


@router.delete(
    "/{user_id}",
    status_code=204,
    dependencies=[requires(Action.DIRECTORY_WRITE)],
    responses=declare(404, 409),
)
def delete_user(user_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Remove a deprovisioned user (409 otherwise: deprovision it first)."""
    with rt.db.session() as session:
        directory.delete_user(session, actor, user_id)


@router.post(
    "/{user_id}/lifecycle/{action}",
    dependencies=[requires(Action.USER_LIFECYCLE)],
    responses=declare(404, 409),
)
def lifecycle(user_id: str, action: Lifecycle, rt: RuntimeDep, actor: AdminDep) -> UserOut:
    """Activate, suspend, unsuspend or deprovision; 409 (with ``current_status``) when the
    user's status does not allow it."""
    with rt.db.session() as session:
        return UserOut.of(directory.change_lifecycle(session, actor, user_id, action))
