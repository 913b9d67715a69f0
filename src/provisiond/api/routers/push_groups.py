"""Groups pushed to an app: ``/apps/{id}/push-groups``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import Page, PushedGroupOut, PushedMemberOut, PushGroupCreate
from provisiond.authz import Action
from provisiond.services import pushes

# Every route loads the app (and most a pushed group) by id: a 404 each.
router = APIRouter(
    prefix="/apps/{app_id}/push-groups", tags=["push groups"], responses=declare(404)
)


@router.get("", dependencies=[requires(Action.APP_READ)])
def list_pushed(app_id: str, rt: RuntimeDep, _: AdminDep) -> Page[PushedGroupOut]:
    """The directory groups pushed to the app, with their state there."""
    with rt.db.session() as session:
        rows = pushes.list_pushed(session, app_id)
        counts = pushes.member_counts(session, [row.id for row in rows])
        return Page[PushedGroupOut](
            items=[PushedGroupOut.of(row, counts.get(row.id, 0)) for row in rows]
        )


@router.post(
    "", status_code=202, dependencies=[requires(Action.APP_MANAGE)], responses=declare(409)
)
def push_group(
    app_id: str, body: PushGroupCreate, rt: RuntimeDep, actor: AdminDep, response: Response
) -> PushedGroupOut:
    """Push a directory group: the app's group of that name is created, or linked when one
    exists (its members are then corrected), and kept equal to the directory's members who
    hold an account in the app, nested groups included. Needs the app's push_groups feature."""
    with rt.db.session() as session:
        row = pushes.push(session, actor, app_id, body.group, unpush_action=body.unpush_action)
        out = PushedGroupOut.of(row, 0)
    response.headers["Location"] = f"/api/v1/apps/{out.app_id}/push-groups/{out.group_id}"
    return out


@router.get("/{group_id}", dependencies=[requires(Action.APP_READ)])
def get_pushed(app_id: str, group_id: str, rt: RuntimeDep, _: AdminDep) -> PushedGroupOut:
    """One pushed group, with the members provisiond last applied to the app's group."""
    with rt.db.session() as session:
        row = pushes.get_pushed(session, app_id, group_id)
        members = [
            PushedMemberOut(remote_id=m.remote_id, user_id=m.user_id, login=m.login)
            for m in pushes.applied_members(session, row)
        ]
        return PushedGroupOut.of(row, len(members), members)


@router.post(
    "/{group_id}/sync",
    status_code=202,
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(409),
)
def sync_pushed(app_id: str, group_id: str, rt: RuntimeDep, actor: AdminDep) -> PushedGroupOut:
    """Read the app's group back and correct whatever was changed there."""
    with rt.db.session() as session:
        row = pushes.sync(session, actor, app_id, group_id)
        return PushedGroupOut.of(row, pushes.member_counts(session, [row.id]).get(row.id, 0))


@router.delete("/{group_id}", status_code=202, dependencies=[requires(Action.APP_MANAGE)])
def unpush_group(
    app_id: str,
    group_id: str,
    rt: RuntimeDep,
    actor: AdminDep,
    action: Literal["leave", "delete"] | None = Query(
        default=None,
        description="leave the app's group as it is, or delete it; default: the action "
        "chosen when the group was pushed.",
    ),
) -> PushedGroupOut:
    """Stop pushing the group; the worker leaves or deletes the app's group."""
    with rt.db.session() as session:
        current = pushes.get_pushed(session, app_id, group_id)
        chosen = action or ("delete" if current.unpush_action == "delete" else "leave")
        row = pushes.unpush(session, actor, app_id, group_id, action=chosen)
        return PushedGroupOut.of(row, pushes.member_counts(session, [row.id]).get(row.id, 0))
