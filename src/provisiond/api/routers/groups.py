from __future__ import annotations

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import GroupCreate, GroupOut, GroupPatch, Page, UserOut
from provisiond.authz import Action
from provisiond.services import directory, nesting
from provisiond.store.tables import Group

router = APIRouter(prefix="/groups", tags=["groups"])


def _out(session: Session, group: Group) -> GroupOut:
    return GroupOut.of(
        group, directory.member_count(session, group.id), nesting.children_of(session, group.id)
    )


@router.get("", dependencies=[requires(Action.DIRECTORY_READ)])
def list_groups(
    rt: RuntimeDep, _: AdminDep, q: str | None = Query(default=None, max_length=256)
) -> Page[GroupOut]:
    """Every group (``q``: the name contains it), with its member count and nested groups."""
    with rt.db.session() as session:
        rows = directory.list_groups(session, q)
        counts = directory.member_counts(session, [g.id for g in rows])
        children = nesting.children_by_parent(session, [g.id for g in rows])
        return Page[GroupOut](
            items=[GroupOut.of(g, counts[g.id], children.get(g.id, ())) for g in rows]
        )


@router.post(
    "", status_code=201, dependencies=[requires(Action.DIRECTORY_WRITE)], responses=declare(409)
)
def create_group(
    body: GroupCreate, rt: RuntimeDep, actor: AdminDep, response: Response
) -> GroupOut:
    """Add a group (409 if the name is taken); with a ``rule`` its members are computed."""
    with rt.db.session() as session:
        group = directory.create_group(session, actor, body.name, body.description, body.rule)
        out = _out(session, group)
    response.headers["Location"] = f"/api/v1/groups/{out.id}"
    return out


@router.get("/{group_id}", dependencies=[requires(Action.DIRECTORY_READ)], responses=declare(404))
def get_group(group_id: str, rt: RuntimeDep, _: AdminDep) -> GroupOut:
    """One group, with its member count and nested groups."""
    with rt.db.session() as session:
        return _out(session, directory.get_group(session, group_id))


@router.patch(
    "/{group_id}", dependencies=[requires(Action.DIRECTORY_WRITE)], responses=declare(404, 409)
)
def update_group(group_id: str, body: GroupPatch, rt: RuntimeDep, actor: AdminDep) -> GroupOut:
    """Rename, describe, or set or remove the rule; the apps it is assigned to are reconciled."""
    rule = body.rule if "rule" in body.model_fields_set else directory.KEEP_RULE
    with rt.db.session() as session:
        group = directory.update_group(session, actor, group_id, body.name, body.description, rule)
        return _out(session, group)


@router.delete(
    "/{group_id}",
    status_code=204,
    dependencies=[requires(Action.DIRECTORY_WRITE)],
    responses=declare(404),
)
def delete_group(group_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Delete a group; its assignments go with it and the users they reached are reconciled."""
    with rt.db.session() as session:
        directory.delete_group(session, actor, group_id)


@router.get(
    "/{group_id}/users", dependencies=[requires(Action.DIRECTORY_READ)], responses=declare(404)
)
def list_members(
    group_id: str,
    rt: RuntimeDep,
    _: AdminDep,
    effective: bool = Query(
        default=False, description="Also the members of the groups nested in this one."
    ),
) -> Page[UserOut]:
    """The group's members: direct ones, or with ``effective`` those of nested groups too."""
    with rt.db.session() as session:
        rows = directory.members(session, group_id, effective=effective)
        return Page[UserOut](items=[UserOut.of(u) for u in rows])


@router.put(
    "/{group_id}/users/{user_id}",
    status_code=204,
    dependencies=[requires(Action.DIRECTORY_WRITE)],
    responses=declare(404, 409),
)
def add_member(group_id: str, user_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Add a member (idempotent); 409 for a group whose rule sets its members."""
    with rt.db.session() as session:
        directory.add_member(session, actor, group_id, user_id)


@router.delete(
    "/{group_id}/users/{user_id}",
    status_code=204,
    dependencies=[requires(Action.DIRECTORY_WRITE)],
    responses=declare(404, 409),
)
def remove_member(group_id: str, user_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Remove a member (404 if not one); 409 for a group whose rule sets its members."""
    with rt.db.session() as session:
        directory.remove_member(session, actor, group_id, user_id)


@router.get(
    "/{group_id}/groups", dependencies=[requires(Action.DIRECTORY_READ)], responses=declare(404)
)
def list_children(group_id: str, rt: RuntimeDep, _: AdminDep) -> Page[GroupOut]:
    """The groups nested directly in this one."""
    with rt.db.session() as session:
        directory.get_group(session, group_id)
        return Page[GroupOut](
            items=[_out(session, child) for child in nesting.children_of(session, group_id)]
        )


@router.put(
    "/{group_id}/groups/{child_id}",
    status_code=204,
    dependencies=[requires(Action.DIRECTORY_WRITE)],
    responses=declare(404, 409),
)
def add_child(group_id: str, child_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Nest a group: its members become members of this one. 409 if that makes a cycle."""
    with rt.db.session() as session:
        nesting.add_child(session, actor, group_id, child_id)


@router.delete(
    "/{group_id}/groups/{child_id}",
    status_code=204,
    dependencies=[requires(Action.DIRECTORY_WRITE)],
    responses=declare(404),
)
def remove_child(group_id: str, child_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Un-nest a group (404 if it is not nested here); the members it brought are reconciled."""
    with rt.db.session() as session:
        nesting.remove_child(session, actor, group_id, child_id)
