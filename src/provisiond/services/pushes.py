"""Pushed groups: an admin chooses directory groups to push to an app; provisiond keeps them.

The app's group carries the directory group's name and, as members, the group's effective
members (nested groups flattened) who hold an active account in the app, plus the holders of a
``group`` role naming it (domain.roles). Every change that can move that set queues one
level-based task for the (app, group) key, in the same transaction as the change:

* a membership change (direct, nested, by rule, a group or user deleted): ``groups_changed``;
* an account created, reactivated, deactivated or deleted in the app: ``accounts_changed``;
* a push, an unpush, a rename, a change of who holds a group role: here and in ``runs``.

The worker (engine.worker) then diffs the desired members against what it last applied
(``pushed_group_members``) and sends only the difference (engine.groups).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.domain.roles import RoleKind
from provisiond.engine import queue
from provisiond.engine.group_members import PUSHED as PUSHED
from provisiond.engine.group_members import UNPUSHING as UNPUSHING
from provisiond.engine.reader import groups_to_recheck
from provisiond.errors import Conflict, NotFound
from provisiond.services import activity, reach
from provisiond.services.apps import get_app, provisioning_of
from provisiond.services.context import Actor
from provisiond.store.tables import (
    AppRole,
    Group,
    PushedGroup,
    PushedGroupMember,
    User,
    utcnow,
)

UnpushAction = Literal["leave", "delete"]
_CHUNK = 900


# -- reading ----------------------------------------------------------------------------------


def list_pushed(session: Session, app_id: str) -> Sequence[PushedGroup]:
    app = get_app(session, app_id)
    return session.scalars(
        select(PushedGroup).where(PushedGroup.app_id == app.id).order_by(PushedGroup.group_name)
    ).all()


def get_pushed(session: Session, app_id: str, group_ref: str) -> PushedGroup:
    """A pushed group by its directory group's id or name."""
    app = get_app(session, app_id)
    row = session.scalar(
        select(PushedGroup).where(PushedGroup.app_id == app.id, PushedGroup.group_id == group_ref)
    )
    if row is None:
        group = _group_by_ref(session, group_ref)
        if group is not None:
            row = session.scalar(
                select(PushedGroup).where(
                    PushedGroup.app_id == app.id, PushedGroup.group_id == group.id
                )
            )
    if row is None:
        raise NotFound(f"group {group_ref!r} is not pushed to {app.name}")
    return row


def member_counts(session: Session, pushed_ids: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for start in range(0, len(pushed_ids), _CHUNK):
        for pushed_id in session.scalars(
            select(PushedGroupMember.pushed_group_id).where(
                PushedGroupMember.pushed_group_id.in_(pushed_ids[start : start + _CHUNK])
            )
        ):
            counts[pushed_id] += 1
    return counts


@dataclass(frozen=True)
class AppliedMember:
    remote_id: str
    user_id: str | None
    login: str | None


def applied_members(session: Session, pushed: PushedGroup) -> list[AppliedMember]:
    """The members provisiond last applied to the app's group, with their logins."""
    rows = session.execute(
        select(PushedGroupMember.remote_id, PushedGroupMember.user_id, User.login)
        .outerjoin(User, User.id == PushedGroupMember.user_id)
        .where(PushedGroupMember.pushed_group_id == pushed.id)
        .order_by(User.login_key, PushedGroupMember.remote_id)
    ).all()
    return [AppliedMember(remote_id, user_id, login) for remote_id, user_id, login in rows]


def status_of(pushed: PushedGroup) -> str:
    """pending (never applied), active, failed, or unpushing."""
    if pushed.state == UNPUSHING:
        return UNPUSHING
    if pushed.last_error:
        return "failed"
    return "active" if pushed.last_synced_at else "pending"


# -- admin actions ----------------------------------------------------------------------------


def push(
    session: Session,
    actor: Actor,
    app_id: str,
    group_ref: str,
    *,
    unpush_action: UnpushAction = "leave",
) -> PushedGroup:
    """Push a directory group (by id or name) to the app; the worker creates or links it."""
    app = get_app(session, app_id)
    group = _group_by_ref(session, group_ref)
    if group is None:
        raise NotFound(f"no group with id or name {group_ref!r}", field="group")
    if not provisioning_of(app).features.push_groups:
        raise Conflict(
            f"{app.name} does not push groups: turn on the push_groups feature in its "
            "provisioning settings first",
            field="group",
        )
    row = session.scalar(
        select(PushedGroup).where(PushedGroup.app_id == app.id, PushedGroup.group_id == group.id)
    )
    if row is not None and row.state == PUSHED:
        raise Conflict(f"group {group.name} is already pushed to {app.name}", field="group")
    clash = session.scalar(
        select(PushedGroup).where(
            PushedGroup.app_id == app.id,
            PushedGroup.state == PUSHED,
            PushedGroup.group_id != group.id,
        ).where(PushedGroup.group_name == group.name)
    )
    if clash is not None:
        raise Conflict(
            f"another pushed group is named {group.name} in {app.name}", field="group"
        )
    if row is None:
        row = PushedGroup(
            app_id=app.id,
            group_id=group.id,
            group_name=group.name,
            linked=False,
            actor=actor.name,
        )
        session.add(row)
    row.state, row.unpush_action, row.updated_at = PUSHED, unpush_action, utcnow()
    row.group_name = group.name
    session.flush()
    activity.record(
        session,
        actor,
        "app.group.push",
        f"pushing group {group.name} to {app.name}",
        app_id=app.id,
        targets={"app": app.name, "group": group.name, "group_id": group.id},
        details={"unpush_action": unpush_action},
    )
    enqueue(session, actor, app.id, [group.id], reason="app.group.push", verify=True)
    return row


def unpush(
    session: Session, actor: Actor, app_id: str, group_ref: str, *, action: UnpushAction
) -> PushedGroup:
    """Stop pushing the group: its app group is left as it is, or deleted, by the worker."""
    row = get_pushed(session, app_id, group_ref)
    app = get_app(session, row.app_id)
    row.state, row.unpush_action, row.updated_at = UNPUSHING, action, utcnow()
    activity.record(
        session,
        actor,
        "app.group.unpush",
        f"unpushing group {row.group_name} from {app.name}: the app's group will be "
        + ("deleted" if action == "delete" else "left as it is"),
        app_id=app.id,
        targets={"app": app.name, "group": row.group_name, "group_id": row.group_id},
        details={"action": action, "remote_id": row.remote_id},
    )
    enqueue(session, actor, app.id, [row.group_id], reason="app.group.unpush")
    return row


def sync(session: Session, actor: Actor, app_id: str, group_ref: str) -> PushedGroup:
    """Read the app's group back and correct it (drift made in the app is undone)."""
    row = get_pushed(session, app_id, group_ref)
    if row.state != PUSHED:
        raise Conflict(f"group {row.group_name} is being unpushed")
    enqueue(session, actor, row.app_id, [row.group_id], reason="app.group.sync", verify=True)
    return row


# -- what triggers a reconcile ----------------------------------------------------------------


def enqueue(
    session: Session,
    actor: Actor,
    app_id: str,
    group_ids: Iterable[str],
    *,
    reason: str,
    verify: bool = False,
) -> None:
    ids = sorted(set(group_ids))
    if ids:
        queue.enqueue(
            session,
            app_id,
            ids,
            reason=reason,
            correlation_id=actor.correlation_id,
            verify_remote=verify,
            kind="group",
        )


def groups_changed(session: Session, actor: Actor, group_ids: Iterable[str], reason: str) -> None:
    """The effective members of these groups (and so of the groups above them) changed."""
    ids = set(group_ids)
    if not ids:
        return
    session.flush()
    affected = reach.ancestors_of(session, ids) | ids  # a deleted group has no ancestors left
    _enqueue_rows(session, actor, _pushed_where(session, affected), reason)


def group_renamed(session: Session, actor: Actor, group_id: str) -> None:
    _enqueue_rows(session, actor, _pushed_where(session, {group_id}), "group.rename")


def accounts_changed(session: Session, actor: Actor, app_id: str, user_id: str, reason: str) -> None:
    """A user's account in the app appeared, went or changed state: re-check the groups the
    user is or was in there (and the groups that express roles), as the worker's writer does."""
    enqueue(session, actor, app_id, groups_to_recheck(session, app_id, [user_id]), reason=reason)


def roles_changed(session: Session, actor: Actor, app_id: str, reason: str) -> None:
    """Who holds which role in the app may have changed: re-check the groups roles name."""
    enqueue(session, actor, app_id, role_group_ids(session, app_id), reason=reason)


def roles_changed_in(session: Session, actor: Actor, app_ids: Iterable[str], reason: str) -> None:
    """:func:`roles_changed` in many apps, with two statements whatever their number."""
    ids = sorted(set(app_ids))
    if not ids:
        return
    names: dict[str, set[str]] = defaultdict(set)
    for app_id, expression in session.execute(
        select(AppRole.app_id, AppRole.expression).where(AppRole.app_id.in_(ids))
    ):
        if expression.get("kind") == RoleKind.GROUP.value:
            names[app_id].add(str(expression["value"]).casefold())
    if not names:
        return
    rows = session.scalars(select(PushedGroup).where(PushedGroup.app_id.in_(sorted(names))))
    _enqueue_rows(
        session, actor, [r for r in rows if r.group_name.casefold() in names[r.app_id]], reason
    )


def app_synced(session: Session, actor: Actor, app_id: str, reason: str) -> None:
    """A full sync reads every pushed group back and corrects it."""
    rows = session.scalars(select(PushedGroup.group_id).where(PushedGroup.app_id == app_id))
    enqueue(session, actor, app_id, list(rows), reason=reason, verify=True)


def _pushed_where(session: Session, group_ids: set[str]) -> list[PushedGroup]:
    rows: list[PushedGroup] = []
    ordered = sorted(group_ids)
    for start in range(0, len(ordered), _CHUNK):
        rows += session.scalars(
            select(PushedGroup).where(PushedGroup.group_id.in_(ordered[start : start + _CHUNK]))
        )
    return rows


def _enqueue_rows(session: Session, actor: Actor, rows: Iterable[PushedGroup], reason: str) -> None:
    per_app: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        per_app[row.app_id].add(row.group_id)
    for app_id, ids in sorted(per_app.items()):
        enqueue(session, actor, app_id, ids, reason=reason)


# -- desired state ----------------------------------------------------------------------------


def role_group_ids(session: Session, app_id: str) -> list[str]:
    """The pushed groups of the app that a ``group`` role names."""
    names = _role_group_names(session, app_id)
    if not names:
        return []
    return [
        row.group_id
        for row in session.scalars(select(PushedGroup).where(PushedGroup.app_id == app_id))
        if row.group_name.casefold() in names
    ]


def _role_group_names(session: Session, app_id: str) -> set[str]:
    expressions = session.scalars(select(AppRole.expression).where(AppRole.app_id == app_id))
    return {
        str(e["value"]).casefold() for e in expressions if e.get("kind") == RoleKind.GROUP.value
    }


def _group_by_ref(session: Session, ref: str) -> Group | None:
    return session.get(Group, ref) or session.scalar(
        select(Group).where(Group.name_key == ref.strip().casefold())
    )
