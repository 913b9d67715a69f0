"""Who is affected by a change: the (app, user) keys to reconcile. Read-only queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.engine.planner import AccountStatus
from provisiond.store.tables import Account, App, Assignment, GroupMember


def enabled_app_ids(session: Session) -> set[str]:
    return {app.id for app in session.scalars(select(App)) if app.provisioning.get("enabled")}


def assignment_sources(session: Session, app_id: str, user_id: str) -> list[str]:
    """How ``user_id`` is assigned to ``app_id``: ``user`` and/or ``group:<id>`` entries.

    Filtered in SQL for this one user: it runs for every task, and an app may have thousands of
    assignments.
    """
    direct = session.scalar(
        select(Assignment.id).where(
            Assignment.app_id == app_id,
            Assignment.principal_type == "user",
            Assignment.principal_id == user_id,
        ).limit(1)
    )
    groups = session.scalars(
        select(GroupMember.group_id)
        .join(
            Assignment,
            (Assignment.principal_id == GroupMember.group_id) & (Assignment.principal_type == "group"),
        )
        .where(Assignment.app_id == app_id, GroupMember.user_id == user_id)
        .order_by(GroupMember.group_id)
    ).all()
    return (["user"] if direct is not None else []) + [f"group:{group_id}" for group_id in groups]


def assigned_users(session: Session, app_id: str) -> dict[str, list[str]]:
    """Every user assigned to an app, with how they are assigned."""
    sources: dict[str, list[str]] = defaultdict(list)
    rows = session.scalars(select(Assignment).where(Assignment.app_id == app_id)).all()
    group_ids = [row.principal_id for row in rows if row.principal_type == "group"]
    for row in rows:
        if row.principal_type == "user":
            sources[row.principal_id].append("user")
    if group_ids:
        for group_id, user_id in session.execute(
            select(GroupMember.group_id, GroupMember.user_id).where(
                GroupMember.group_id.in_(group_ids)
            )
        ):
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


def apps_of_user(session: Session, user_id: str) -> set[str]:
    """Enabled apps where the user is assigned or holds an account."""
    enabled = enabled_app_ids(session)
    direct = session.scalars(
        select(Assignment.app_id).where(
            Assignment.principal_type == "user", Assignment.principal_id == user_id
        )
    )
    groups = select(GroupMember.group_id).where(GroupMember.user_id == user_id)
    via_group = session.scalars(
        select(Assignment.app_id).where(
            Assignment.principal_type == "group", Assignment.principal_id.in_(groups)
        )
    )
    held = session.scalars(
        select(Account.app_id).where(
            Account.user_id == user_id, Account.status != AccountStatus.DELETED.value
        )
    )
    return enabled & (set(direct) | set(via_group) | set(held))


def apps_of_group(session: Session, group_id: str) -> set[str]:
    enabled = enabled_app_ids(session)
    rows = session.scalars(
        select(Assignment.app_id).where(
            Assignment.principal_type == "group", Assignment.principal_id == group_id
        )
    )
    return enabled & set(rows)


def group_member_ids(session: Session, group_ids: Iterable[str]) -> set[str]:
    ids = list(group_ids)
    if not ids:
        return set()
    return set(session.scalars(select(GroupMember.user_id).where(GroupMember.group_id.in_(ids))))
