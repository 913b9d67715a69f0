"""Who is affected by a change: the (app, user) keys to reconcile. Read-only queries.

Groups nest (``group_children``, kept acyclic by services.nesting): a group's *effective*
members are its direct members and those of every group below it. Whatever decides who should
have an account asks here, through ``effective_groups_of`` / ``effective_members``, computed by
recursive CTEs that run on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import CTE, Select, func, select
from sqlalchemy.orm import Session

from provisiond.engine.planner import AccountStatus

# The engine's: every "who is in this group" below builds on it.
from provisiond.engine.reader import effective_members as effective_members
from provisiond.store.tables import Account, App, Assignment, Group, GroupChild, GroupMember

_CHUNK = 900  # below SQLite's bound-parameter limit


def enabled_app_ids(session: Session) -> set[str]:
    return {app.id for app in session.scalars(select(App)) if app.provisioning.get("enabled")}


def assignment_sources(session: Session, app_id: str, user_id: str) -> list[str]:
    """How ``user_id`` is assigned to ``app_id``: ``user`` and/or ``group:<id>`` entries.

    Filtered in SQL for this one user: it runs for every task, and an app may have thousands of
    assignments.
    """
    direct = session.scalar(
        select(Assignment.id)
        .where(
            Assignment.app_id == app_id,
            Assignment.principal_type == "user",
            Assignment.principal_id == user_id,
        )
        .limit(1)
    )
    # Nested groups: a member of a child group is reached by the parent's assignment; the
    # source names the assigned (parent) group, so priorities and roles resolve as before.
    groups = effective_groups_of(session, user_id)
    assigned = (
        sorted(
            session.scalars(
                select(Assignment.principal_id).where(
                    Assignment.app_id == app_id,
                    Assignment.principal_type == "group",
                    Assignment.principal_id.in_(groups),
                )
            )
        )
        if groups
        else []
    )
    return (["user"] if direct is not None else []) + [f"group:{group_id}" for group_id in assigned]


def assigned_users(session: Session, app_id: str) -> dict[str, list[str]]:
    """Every user assigned to an app, with how they are assigned (nested groups flattened)."""
    sources: dict[str, list[str]] = defaultdict(list)
    rows = session.scalars(select(Assignment).where(Assignment.app_id == app_id)).all()
    group_ids = [row.principal_id for row in rows if row.principal_type == "group"]
    for row in rows:
        if row.principal_type == "user":
            sources[row.principal_id].append("user")
    for group_id, user_ids in sorted(effective_members(session, group_ids).items()):
        for user_id in user_ids:
            sources[user_id].append(f"group:{group_id}")
    return dict(sources)


def account_holders(session: Session, app_id: str) -> set[str]:
    return set(
        session.scalars(
            select(Account.user_id).where(
                Account.app_id == app_id, Account.status != AccountStatus.DELETED.value
            )
        )
    )


def account_count(session: Session, app_id: str) -> int:
    """How many accounts the app holds that are not deleted (what percentage limits count)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Account)
            .where(Account.app_id == app_id, Account.status != AccountStatus.DELETED.value)
        )
        or 0
    )


def apps_of_user(session: Session, user_id: str) -> set[str]:
    """Enabled apps where the user is assigned (directly or by any effective group) or holds
    an account."""
    enabled = enabled_app_ids(session)
    direct = session.scalars(
        select(Assignment.app_id).where(
            Assignment.principal_type == "user", Assignment.principal_id == user_id
        )
    )
    groups = _up(select(GroupMember.group_id.label("id")).where(GroupMember.user_id == user_id))
    via_group = session.scalars(
        select(Assignment.app_id).where(
            Assignment.principal_type == "group", Assignment.principal_id.in_(select(groups.c.id))
        )
    )
    held = session.scalars(
        select(Account.app_id).where(
            Account.user_id == user_id, Account.status != AccountStatus.DELETED.value
        )
    )
    return enabled & (set(direct) | set(via_group) | set(held))


def apps_of_group(session: Session, group_id: str) -> set[str]:
    """Enabled apps the group's members reach through it: assigned to it or to a group above."""
    return apps_of_groups(session, ancestors_of(session, [group_id]))


def apps_of_groups(session: Session, group_ids: Iterable[str]) -> set[str]:
    """Enabled apps assigned to any of these groups (not following nesting)."""
    assigned = assigned_apps(session, group_ids).values()
    return enabled_app_ids(session) & set().union(*assigned)


def assigned_apps(session: Session, group_ids: Iterable[str]) -> dict[str, set[str]]:
    """group id -> the apps it is assigned to (enabled or not), for the groups given."""
    found: dict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted(set(group_ids))):
        for app_id, group_id in session.execute(
            select(Assignment.app_id, Assignment.principal_id).where(
                Assignment.principal_type == "group", Assignment.principal_id.in_(chunk)
            )
        ):
            found[group_id].add(app_id)
    return dict(found)


def group_member_ids(session: Session, group_ids: Iterable[str]) -> set[str]:
    """The effective members of any of these groups (nested groups flattened)."""
    found: set[str] = set()
    for users in effective_members(session, group_ids).values():
        found |= users
    return found


# -- nesting --------------------------------------------------------------------------------------


def effective_groups_of(session: Session, user_id: str) -> set[str]:
    """Every group the user is in: the groups they are a direct member of and all above them."""
    start = select(GroupMember.group_id.label("id")).where(GroupMember.user_id == user_id)
    groups = _up(start)
    return set(session.scalars(select(groups.c.id)))


def ancestors_of(session: Session, group_ids: Iterable[str]) -> set[str]:
    """These groups and every group above them (whose effective members include theirs)."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(group_ids))):
        start = select(Group.id.label("id")).where(Group.id.in_(chunk))
        found |= set(chunk) | set(session.scalars(select(_up(start).c.id)))
    return found


def _up(start: Select[Any]) -> CTE:
    """A recursive CTE ``(id)``: the groups ``start`` selects and every group above them.

    UNION (not UNION ALL) removes duplicates, so it ends even on a graph with a cycle.
    """
    up = start.cte("up", recursive=True)
    return up.union(
        select(GroupChild.parent_id).join_from(up, GroupChild, GroupChild.child_id == up.c.id)
    )


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
