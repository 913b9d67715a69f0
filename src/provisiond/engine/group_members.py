"""Who a pushed group should hold in its app, and what provisiond last applied there.

The app's group holds the directory group's effective members (nested groups flattened) who
have an active account in the app, plus the holders of a ``group`` role naming it. Read in
bulk with Core statements: role holders are resolved from one read of every candidate's
assignments (engine.reader), not one query per candidate.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from provisiond.domain.roles import RoleKind, RoleMode
from provisiond.engine.reader import assignment_labels, chunks, effective_members
from provisiond.engine.roles import resolve
from provisiond.engine.sources import index
from provisiond.store.tables import Account, AppRole, Assignment, AssignmentRole, PushedGroupMember

PUSHED, UNPUSHING = "pushed", "unpushing"


def role_holders(session: Session, app_id: str, mode: RoleMode, group_name: str) -> set[str]:
    """Users whose resolved roles in the app include a ``group`` role naming ``group_name``."""
    key = group_name.casefold()
    roles = [
        role_id
        for role_id, expression in session.execute(
            select(AppRole.id, AppRole.expression).where(AppRole.app_id == app_id)
        )
        if expression.get("kind") == RoleKind.GROUP.value
        and str(expression.get("value", "")).casefold() == key
    ]
    if not roles:
        return set()
    candidates = granted_to(session, roles)
    labels = assignment_labels(session, app_id, candidates)
    principals = [
        ("user", uid) if label == "user" else ("group", label.partition(":")[2])
        for uid, found in labels.items()
        for label in found
    ]
    granting = index(session, app_id, principals)
    return {
        user_id
        for user_id, found in labels.items()
        if any(
            role.kind is RoleKind.GROUP and role.value.casefold() == key
            for role in resolve(granting.of(user_id, found), mode)
        )
    }


def granted_to(session: Session, role_ids: Iterable[str]) -> set[str]:
    """The users reached by the assignments that grant any of these roles."""
    rows = session.execute(
        select(Assignment.principal_type, Assignment.principal_id)
        .join(AssignmentRole, AssignmentRole.assignment_id == Assignment.id)
        .where(AssignmentRole.role_id.in_(sorted(set(role_ids))))
        .distinct()
    ).all()
    users = {pid for kind, pid in rows if kind == "user"}
    for members in effective_members(session, [pid for kind, pid in rows if kind == "group"]).values():
        users |= members
    return users


def desired_members(
    session: Session, app_id: str, mode: RoleMode, group_id: str | None, group_name: str
) -> dict[str, str]:
    """account remote id -> user id: who the app's group should hold, now (``group_id`` None:
    the directory group is gone)."""
    users: set[str] = set()
    if group_id is not None:
        users = effective_members(session, [group_id])[group_id]
        users |= role_holders(session, app_id, mode, group_name)
    out: dict[str, str] = {}
    for chunk in chunks(users):
        rows = session.execute(
            select(Account.remote_id, Account.user_id).where(
                Account.app_id == app_id,
                Account.status == "active",
                Account.remote_id.is_not(None),
                Account.user_id.in_(chunk),
            )
        )
        for remote_id, user_id in rows:
            if remote_id:
                out[remote_id] = user_id
    return out


def applied(session: Session, pushed_id: str) -> dict[str, str | None]:
    """remote id -> user id of what provisiond last applied to the app's group."""
    rows = session.execute(
        select(PushedGroupMember.remote_id, PushedGroupMember.user_id).where(
            PushedGroupMember.pushed_group_id == pushed_id
        )
    )
    return {remote_id: user_id for remote_id, user_id in rows}


def store_members(
    session: Session,
    pushed_id: str,
    before: dict[str, str | None],
    after: dict[str, str | None],
) -> None:
    """Record ``after`` as what the app's group holds, writing only the difference."""
    for chunk in chunks(set(before) - set(after)):
        session.execute(
            delete(PushedGroupMember).where(
                PushedGroupMember.pushed_group_id == pushed_id,
                PushedGroupMember.remote_id.in_(chunk),
            )
        )
    new = [
        {"pushed_group_id": pushed_id, "remote_id": remote_id, "user_id": user_id}
        for remote_id, user_id in sorted(after.items())
        if remote_id not in before
    ]
    if new:
        session.execute(insert(PushedGroupMember), new)
