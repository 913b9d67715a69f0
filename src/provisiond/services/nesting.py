"""Nested groups: a group may contain groups, whose members are then members of it too.

The nesting is kept acyclic: an edge that would close a cycle is refused with the path it
would close (``A → B → A``). On PostgreSQL, nesting changes take one transaction-level
advisory lock, so two concurrent edges cannot close a cycle that neither sees alone (SQLite
serialises writers anyway).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from provisiond.errors import Conflict, NotFound
from provisiond.services import activity, membership
from provisiond.services.context import Actor
from provisiond.services.directory import get_group
from provisiond.store.tables import Group, GroupChild

_NESTING_LOCK = 0x70726F76  # pg_advisory_xact_lock key for nesting changes ("prov")


def children_of(session: Session, group_id: str) -> Sequence[Group]:
    return session.scalars(
        select(Group)
        .join(GroupChild, GroupChild.child_id == Group.id)
        .where(GroupChild.parent_id == group_id)
        .order_by(Group.name_key)
    ).all()


def children_by_parent(session: Session, group_ids: Sequence[str]) -> dict[str, list[Group]]:
    """parent id -> the groups nested in it, for the parents given."""
    found: dict[str, list[Group]] = {}
    for start in range(0, len(group_ids), 900):
        rows = session.execute(
            select(GroupChild.parent_id, Group)
            .join(Group, Group.id == GroupChild.child_id)
            .where(GroupChild.parent_id.in_(group_ids[start : start + 900]))
            .order_by(Group.name_key)
        ).all()
        for parent_id, child in rows:
            found.setdefault(parent_id, []).append(child)
    return found


def parents_of(session: Session, group_id: str) -> Sequence[Group]:
    return session.scalars(
        select(Group)
        .join(GroupChild, GroupChild.parent_id == Group.id)
        .where(GroupChild.child_id == group_id)
        .order_by(Group.name_key)
    ).all()


def path_between(session: Session, start: str, goal: str) -> list[str] | None:
    """A shortest downward path of group ids from ``start`` to ``goal``, if there is one.

    Breadth first, one query per level, so only the groups below ``start`` are read.
    """
    previous: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier and goal not in previous:
        rows = session.execute(
            select(GroupChild.parent_id, GroupChild.child_id).where(
                GroupChild.parent_id.in_(frontier)
            )
        ).all()
        frontier = []
        for parent, child in sorted(rows):
            if child not in previous:
                previous[child] = parent
                frontier.append(child)
    if goal not in previous:
        return None
    path: list[str] = []
    node: str | None = goal
    while node is not None:
        path.append(node)
        node = previous[node]
    return path[::-1]


def add_child(session: Session, actor: Actor, parent_id: str, child_id: str) -> bool:
    """Nest ``child_id`` in ``parent_id``; False if it already was. Conflict on a cycle."""
    _lock(session)
    parent, child = get_group(session, parent_id), get_group(session, child_id)
    if parent.id == child.id:
        raise Conflict(f"a group cannot contain itself: {parent.name} → {parent.name}")
    if session.get(GroupChild, (parent.id, child.id)) is not None:
        return False
    back = path_between(session, child.id, parent.id)
    if back is not None:
        names = _names(session, [parent.id, *back])
        raise Conflict(
            f"nesting {child.name} in {parent.name} would make a cycle: {' → '.join(names)}",
            cycle=names,
        )
    before = membership.watch(session, [parent.id])
    session.add(GroupChild(parent_id=parent.id, child_id=child.id))
    session.flush()
    activity.record(
        session,
        actor,
        "group.group_membership.add",
        f"nested {child.name} in {parent.name}",
        targets=_targets(parent, child),
    )
    membership.reconcile_changes(session, actor, before, "group.nesting")
    return True


def remove_child(session: Session, actor: Actor, parent_id: str, child_id: str) -> None:
    _lock(session)
    parent, child = get_group(session, parent_id), get_group(session, child_id)
    edge = session.get(GroupChild, (parent.id, child.id))
    if edge is None:
        raise NotFound(f"{child.name} is not nested in {parent.name}")
    before = membership.watch(session, [parent.id])
    session.delete(edge)
    session.flush()
    activity.record(
        session,
        actor,
        "group.group_membership.remove",
        f"removed {child.name} from {parent.name}",
        targets=_targets(parent, child),
    )
    membership.reconcile_changes(session, actor, before, "group.nesting")


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _NESTING_LOCK})


def _names(session: Session, ids: list[str]) -> list[str]:
    rows = dict(session.execute(select(Group.id, Group.name).where(Group.id.in_(set(ids)))).all())
    return [rows.get(group_id, group_id) for group_id in ids]


def _targets(parent: Group, child: Group) -> dict[str, str]:
    return {
        "group": parent.name,
        "group_id": parent.id,
        "child_group": child.name,
        "child_group_id": child.id,
    }
