"""Read the inputs of many account reconciles of one app at once, with Core statements.

A batch of N keys costs the same handful of statements whatever N is (chunked under SQLite's
parameter limit): the users, how each is assigned (direct, or through any effective group),
the role-granting assignments when the app defines roles, the account records, and the runs
that hold deprovisionings back. Rows are tuples, never ORM objects: the identity map was the
largest single cost of the per-task worker.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, bindparam, select
from sqlalchemy.orm import Session

from provisiond.domain.roles import RoleKind
from provisiond.engine.context import AppContext
from provisiond.engine.planner import AccountStatus, ActualAccount
from provisiond.engine.roles import Source
from provisiond.engine.sources import index
from provisiond.store.tables import (
    Account,
    AppRole,
    Assignment,
    Group,
    GroupChild,
    GroupMember,
    PushedGroup,
    PushedGroupMember,
    Run,
    User,
    utcnow,
)

CHUNK = 900  # below SQLite's bound-parameter limit
CANCELLED_WINDOW = timedelta(hours=1)  # how long a cancelled run still drops its old tasks


@dataclass(frozen=True)
class UserRecord:
    id: str
    login: str
    status: str
    profile: dict[str, Any]


@dataclass(frozen=True)
class AccountRecord:
    remote_id: str | None
    applied: dict[str, Any]
    status: str
    deactivated_at: datetime | None
    fingerprint: str | None

    def actual(self) -> ActualAccount:
        return ActualAccount(
            self.remote_id, self.applied, AccountStatus(self.status), self.deactivated_at
        )


@dataclass(frozen=True)
class Hold:
    """A run that keeps deprovisionings of its users back: ``held`` defers them; ``cancelled``
    (recently) drops those queued before it was held."""

    run_id: str
    status: str
    started_at: datetime
    user_ids: frozenset[str]


@dataclass(frozen=True)
class AccountInputs:
    """Everything the records say about one (app, user) key."""

    user_id: str
    user: UserRecord | None  # None: removed from the directory
    sources: tuple[Source, ...]
    account: AccountRecord | None


def chunks(items: Iterable[str]) -> Iterator[list[str]]:
    ordered = sorted(set(items))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


# The batch's statements, built once with their lists as expanding parameters: building one
# (and its cache key) cost more of the database thread than SQLite running it did (measured
# with py-spy, bench/RESULTS.md §15); a statement object keeps its cache key memoized.
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_APPS: BindParameter[Any] = bindparam("apps", expanding=True)
_USERS = select(User.id, User.login, User.status, User.profile).where(User.id.in_(_IDS))


def _effective_groups_statement() -> Any:
    start = select(GroupMember.user_id.label("user_id"), GroupMember.group_id.label("id"))
    up = start.where(GroupMember.user_id.in_(_IDS)).cte("up", recursive=True)
    up = up.union(
        select(up.c.user_id, GroupChild.parent_id).join(GroupChild, GroupChild.child_id == up.c.id)
    )
    return select(up.c.user_id, up.c.id)


_EFFECTIVE_GROUPS = _effective_groups_statement()
_GROUP_ASSIGNMENTS = select(Assignment.app_id, Assignment.principal_id).where(
    Assignment.app_id.in_(_APPS), Assignment.principal_type == "group"
)
_USER_ASSIGNMENTS = select(Assignment.app_id, Assignment.principal_id).where(
    Assignment.app_id.in_(_APPS),
    Assignment.principal_type == "user",
    Assignment.principal_id.in_(_IDS),
)
_ACCOUNTS = select(
    Account.app_id,
    Account.user_id,
    Account.remote_id,
    Account.applied,
    Account.status,
    Account.deactivated_at,
    Account.fingerprint,
).where(Account.app_id.in_(_APPS), Account.user_id.in_(_IDS))
_HOLDS = select(Run.id, Run.app_id, Run.status, Run.started_at, Run.held).where(
    Run.app_id.in_(_APPS),
    (Run.status == "held")
    | ((Run.status == "cancelled") & (Run.finished_at >= bindparam("recent"))),
)
_HAS_ACCOUNTS = select(Account.id).where(Account.app_id == bindparam("app_id")).limit(1)


def read_users(session: Session, user_ids: Iterable[str]) -> dict[str, UserRecord]:
    found: dict[str, UserRecord] = {}
    connection = session.connection()
    for chunk in chunks(user_ids):
        for row in connection.execute(_USERS, {"ids": chunk}):
            found[row.id] = UserRecord(row.id, row.login, row.status, row.profile)
    return found


def read_accounts(
    session: Session, app_id: str, user_ids: Iterable[str]
) -> dict[str, AccountRecord]:
    return _accounts_many(session, {app_id: set(user_ids)})[app_id]


def effective_groups(session: Session, user_ids: Iterable[str]) -> dict[str, set[str]]:
    """user id -> every group the user is in: direct memberships and every group above them.

    One recursive CTE per chunk carries the user along (UNION, not UNION ALL, so it ends even
    on a graph with a cycle)."""
    found: dict[str, set[str]] = defaultdict(set)
    connection = session.connection()
    for chunk in chunks(user_ids):
        for user_id, group_id in connection.execute(_EFFECTIVE_GROUPS, {"ids": chunk}):
            found[user_id].add(group_id)
    return found


@dataclass(frozen=True)
class SharedInputs:
    """What a batch reads once for all its apps: the users, and every group each is in."""

    users: dict[str, UserRecord]
    memberships: dict[str, set[str]]


def read_shared(session: Session, user_ids: Iterable[str]) -> SharedInputs:
    wanted = sorted(set(user_ids))
    return SharedInputs(read_users(session, wanted), effective_groups(session, wanted))


def assignment_labels(
    session: Session,
    app_id: str,
    user_ids: Iterable[str],
    memberships: Mapping[str, set[str]] | None = None,
) -> dict[str, list[str]]:
    """How each user is assigned to the app: ``user`` and/or ``group:<id>`` of the assigned
    groups they are in (nested groups flattened), in that order, groups sorted."""
    wanted = set(user_ids)
    if memberships is None:
        memberships = effective_groups(session, wanted)
    return _labels_many(session, {app_id: wanted}, memberships).get(app_id, {})


def _labels_many(
    session: Session, wanted: Mapping[str, set[str]], memberships: Mapping[str, set[str]]
) -> dict[str, dict[str, list[str]]]:
    """``assignment_labels`` of several apps in two statements: the apps' group assignments,
    and these users' direct ones (an app may have thousands of directly assigned users)."""
    connection = session.connection()
    apps = sorted(wanted)
    groups: dict[str, set[str]] = defaultdict(set)
    for app_id, group_id in connection.execute(_GROUP_ASSIGNMENTS, {"apps": apps}):
        groups[app_id].add(group_id)
    direct: set[tuple[str, str]] = set()
    for chunk in chunks(set().union(*wanted.values())):
        direct |= {
            (app_id, user_id)
            for app_id, user_id in connection.execute(
                _USER_ASSIGNMENTS, {"apps": apps, "ids": chunk}
            )
        }
    found: dict[str, dict[str, list[str]]] = {}
    for app_id, user_ids in wanted.items():
        labels: dict[str, list[str]] = {}
        for user_id in user_ids:
            entry = (["user"] if (app_id, user_id) in direct else []) + [
                f"group:{group_id}"
                for group_id in sorted(memberships.get(user_id, set()) & groups[app_id])
            ]
            if entry:
                labels[user_id] = entry
        found[app_id] = labels
    return found


def _accounts_many(
    session: Session, wanted: Mapping[str, set[str]]
) -> dict[str, dict[str, AccountRecord]]:
    found: dict[str, dict[str, AccountRecord]] = {app_id: {} for app_id in wanted}
    connection = session.connection()
    apps = sorted(wanted)
    for chunk in chunks(set().union(*wanted.values())):
        for row in connection.execute(_ACCOUNTS, {"apps": apps, "ids": chunk}):
            if row.user_id in wanted[row.app_id]:
                found[row.app_id][row.user_id] = AccountRecord(
                    row.remote_id, row.applied, row.status, row.deactivated_at, row.fingerprint
                )
    return found


def read_batch(
    session: Session, contexts: Mapping[str, AppContext], wanted: Mapping[str, Iterable[str]]
) -> dict[str, dict[str, AccountInputs]]:
    """The records of each (app, user) key of a batch that may span many apps, in a handful
    of statements whatever the number of apps and keys: the users and their groups once,
    the apps' assignments, the account records (and the role-granting assignments of apps
    that define roles). One read for N keys equals N reads for one."""
    keys = {app_id: set(ids) for app_id, ids in wanted.items() if app_id in contexts}
    if not keys:
        return {}
    shared = read_shared(session, set().union(*keys.values()))
    labels = _labels_many(session, keys, shared.memberships)
    accounts = _accounts_many(session, keys)
    found: dict[str, dict[str, AccountInputs]] = {}
    for app_id, user_ids in keys.items():
        ctx, app_labels = contexts[app_id], labels[app_id]
        if ctx.roles.kinds and app_labels:
            principals = [
                ("user", uid) if label == "user" else ("group", label.partition(":")[2])
                for uid, entry in app_labels.items()
                for label in entry
            ]
            granting = index(session, app_id, principals)
            sources = {uid: tuple(granting.of(uid, entry)) for uid, entry in app_labels.items()}
        else:
            sources = {
                uid: tuple(Source(label) for label in entry) for uid, entry in app_labels.items()
            }
        found[app_id] = {
            uid: AccountInputs(
                uid, shared.users.get(uid), sources.get(uid, ()), accounts[app_id].get(uid)
            )
            for uid in sorted(user_ids)
        }
    return found


def read_inputs(
    session: Session, ctx: AppContext, user_ids: Iterable[str]
) -> dict[str, AccountInputs]:
    """The records of each (app, user) key of one app (``read_batch`` for a single app)."""
    return read_batch(session, {ctx.app_id: ctx}, {ctx.app_id: user_ids}).get(ctx.app_id, {})


def read_holds_many(
    session: Session, app_ids: Iterable[str], now: datetime | None = None
) -> dict[str, list[Hold]]:
    """The held runs of these apps, and those cancelled within the last hour."""
    apps = sorted(set(app_ids))
    if not apps:  # a batch that deprovisions nothing (most): no statement at all
        return {}
    recent = (now or utcnow()) - CANCELLED_WINDOW
    found: dict[str, list[Hold]] = defaultdict(list)
    rows = session.connection().execute(_HOLDS, {"apps": apps, "recent": recent})
    for row in rows:
        # A run holding a pending policy keeps nothing back: that policy is not in force, so
        # no task is planned under it, and deferring others' deprovisionings (a leaver's)
        # behind it would only delay them.
        if row.held and "policy" not in row.held:
            found[row.app_id].append(
                Hold(row.id, row.status, row.started_at,
                     frozenset(row.held.get("user_ids", ())))
            )
    return dict(found)


def read_holds(session: Session, app_id: str, now: datetime | None = None) -> list[Hold]:
    """The app's held runs, and those cancelled within the last hour."""
    return read_holds_many(session, [app_id], now).get(app_id, [])


def holding(
    holds: Iterable[Hold], user_id: str, queued_at: datetime | None
) -> tuple[str, str] | None:
    """The run that keeps back this user's deprovisioning, as (status, run id). Pure.

    A ``held`` run defers it. A recently ``cancelled`` run also drops it when the task was
    queued before that run was held: such a task belongs to the cancelled change, even if a
    worker claimed it just before the cancel and reads the directory just after.
    """
    for hold in holds:
        if user_id not in hold.user_ids:
            continue
        if hold.status == "held":
            return ("held", hold.run_id)
        if queued_at is not None and queued_at <= hold.started_at:
            return ("cancelled", hold.run_id)
    return None


def queued_times(tasks: Iterable[Any]) -> Mapping[str, datetime]:
    return {task.subject_id: task.updated_at for task in tasks}


def groups_to_recheck(session: Session, app_id: str, user_ids: Iterable[str]) -> set[str]:
    """The pushed groups of the app that hold, or should hold, any of these users: re-checked
    when their accounts appear, go or change state (and the groups that express roles)."""
    connection = session.connection()
    pushed = connection.execute(
        select(PushedGroup.group_id, PushedGroup.group_name).where(PushedGroup.app_id == app_id)
    ).all()
    if not pushed:  # the common case: nothing to re-check, and no closure to compute
        return set()
    wanted = sorted(set(user_ids))
    member_of: set[str] = set().union(*effective_groups(session, wanted).values())
    found = {group_id for group_id, _ in pushed if group_id in member_of}
    for chunk in chunks(wanted):
        found |= set(
            connection.execute(
                select(PushedGroup.group_id)
                .join(PushedGroupMember, PushedGroupMember.pushed_group_id == PushedGroup.id)
                .where(PushedGroup.app_id == app_id, PushedGroupMember.user_id.in_(chunk))
            ).scalars()
        )
    expressions = connection.execute(
        select(AppRole.expression).where(AppRole.app_id == app_id)
    ).scalars()
    role_groups = {
        str(e["value"]).casefold() for e in expressions if e.get("kind") == RoleKind.GROUP.value
    }
    return found | {group_id for group_id, name in pushed if name.casefold() in role_groups}


def effective_members(session: Session, group_ids: Iterable[str]) -> dict[str, set[str]]:
    """group id -> its effective members (direct members of it and of every group below it).

    Every group given is a key, with an empty set when it has no members or does not exist.
    """
    found: dict[str, set[str]] = {group_id: set() for group_id in group_ids}
    connection = session.connection()
    for chunk in chunks(found):
        roots = select(Group.id.label("root"), Group.id.label("id")).where(Group.id.in_(chunk))
        down = roots.cte("down", recursive=True)
        down = down.union(
            select(down.c.root, GroupChild.child_id).join(
                GroupChild, GroupChild.parent_id == down.c.id
            )
        )
        statement = (
            select(down.c.root, GroupMember.user_id)
            .join(GroupMember, GroupMember.group_id == down.c.id)
            .distinct()
        )
        for root, user_id in connection.execute(statement):
            found[root].add(user_id)
    return found


def has_accounts(session: Session, app_id: str) -> bool:
    """Whether provisiond has ever recorded an account in the app."""
    found = session.connection().execute(_HAS_ACCOUNTS, {"app_id": app_id}).first()
    return found is not None
