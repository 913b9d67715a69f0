from __future__ import annotations

from fastapi import APIRouter, Query, Response

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.schemas import GroupCreate, GroupOut, GroupPatch, Page, UserOut
from provisiond.authz import Action
from provisiond.services import directory

router = APIRouter(prefix="/groups", tags=["groups"])


@router.get("", dependencies=[requires(Action.DIRECTORY_READ)])
def list_groups(
    rt: RuntimeDep, _: AdminDep, q: str | None = Query(default=None, max_length=256)
) -> Page[GroupOut]:
    with rt.db.session() as session:
        rows = directory.list_groups(session, q)
        return Page[GroupOut](
            items=[GroupOut.of(g, directory.member_count(session, g.id)) for g in rows]
        )


@router.post("", status_code=201, dependencies=[requires(Action.DIRECTORY_WRITE)])
def create_group(
    body: GroupCreate, rt: RuntimeDep, actor: AdminDep, response: Response
) -> GroupOut:
    with rt.db.session() as session:
        group = directory.create_group(session, actor, body.name, body.description)
        out = GroupOut.of(group, 0)
    response.headers["Location"] = f"/api/v1/groups/{out.id}"
    return out


@router.get("/{group_id}", dependencies=[requires(Action.DIRECTORY_READ)])
def get_group(group_id: str, rt: RuntimeDep, _: AdminDep) -> GroupOut:
    with rt.db.session() as session:
        group = directory.get_group(session, group_id)
        return GroupOut.of(group, directory.member_count(session, group.id))


@router.patch("/{group_id}", dependencies=[requires(Action.DIRECTORY_WRITE)])
def update_group(group_id: str, body: GroupPatch, rt: RuntimeDep, actor: AdminDep) -> GroupOut:
    with rt.db.session() as session:
        group = directory.update_group(session, actor, group_id, body.name, body.description)
        return GroupOut.of(group, directory.member_count(session, group.id))


@router.delete("/{group_id}", status_code=204, dependencies=[requires(Action.DIRECTORY_WRITE)])
def delete_group(group_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    with rt.db.session() as session:
        directory.delete_group(session, actor, group_id)


@router.get("/{group_id}/users", dependencies=[requires(Action.DIRECTORY_READ)])
def list_members(group_id: str, rt: RuntimeDep, _: AdminDep) -> Page[UserOut]:
    with rt.db.session() as session:
        return Page[UserOut](items=[UserOut.of(u) for u in directory.members(session, group_id)])


@router.put(
    "/{group_id}/users/{user_id}", status_code=204, dependencies=[requires(Action.DIRECTORY_WRITE)]
)
def add_member(group_id: str, user_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    with rt.db.session() as session:
        directory.add_member(session, actor, group_id, user_id)


@router.delete(
    "/{group_id}/users/{user_id}", status_code=204, dependencies=[requires(Action.DIRECTORY_WRITE)]
)
def remove_member(group_id: str, user_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    with rt.db.session() as session:
        directory.remove_member(session, actor, group_id, user_id)
