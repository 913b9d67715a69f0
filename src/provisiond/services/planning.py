"""Plan many users of one app at once from the records (no app I/O): previews and safety checks.

Reads the directory, the assignments and the account records in a handful of bulk queries,
then runs the same pure functions the worker runs for one user (engine.desired.evaluate and
engine.planner.plan), so a preview shows exactly what the worker would do from these records.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.domain.apps import ProvisioningSettings
from provisiond.domain.directory import UserStatus
from provisiond.engine.desired import DirectoryUser, evaluate
from provisiond.engine.mapping import CompiledPolicy
from provisiond.engine.planner import (
    AccountStatus,
    ActualAccount,
    Operation,
    OperationKind,
    plan,
)
from provisiond.expressions import EvaluationError
from provisiond.store.tables import Account, Assignment, GroupMember, User

DEPROVISIONS = frozenset({OperationKind.DEACTIVATE, OperationKind.DELETE})
_CHUNK = 900  # below SQLite's bound-parameter limit


@dataclass(frozen=True)
class PlannedUser:
    user_id: str
    login: str
    reason: str
    operation: Operation | None = None
    error: str | None = None


@dataclass
class AppPlan:
    users: list[PlannedUser] = field(default_factory=list)
    accounts: int = 0  # the app's accounts that are not deleted, for percentage limits

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(u.operation.kind.value for u in self.users if u.operation is not None)
        counted["unchanged"] = sum(1 for u in self.users if u.operation is None and u.error is None)
        counted["failed"] = sum(1 for u in self.users if u.error is not None)
        return {kind: counted.get(kind, 0) for kind in
                ("create", "update", "deactivate", "reactivate", "delete", "unchanged", "failed")}

    @property
    def deprovisions(self) -> list[PlannedUser]:
        return [u for u in self.users if u.operation is not None and u.operation.kind in DEPROVISIONS]


def sources_for(session: Session, app_id: str, user_ids: set[str] | None) -> dict[str, list[str]]:
    """How each user (all, or those given) is assigned to the app."""
    sources: dict[str, list[str]] = defaultdict(list)
    rows = session.execute(
        select(Assignment.principal_type, Assignment.principal_id).where(Assignment.app_id == app_id)
    ).all()
    groups = [pid for kind, pid in rows if kind == "group"]
    for kind, pid in rows:
        if kind == "user" and (user_ids is None or pid in user_ids):
            sources[pid].append("user")
    for chunk in _chunks(groups):
        statement = select(GroupMember.group_id, GroupMember.user_id).where(GroupMember.group_id.in_(chunk))
        for group_id, user_id in session.execute(statement):
            if user_ids is None or user_id in user_ids:
                sources[user_id].append(f"group:{group_id}")
    return dict(sources)


def plan_app(
    session: Session,
    app_id: str,
    policy: CompiledPolicy,
    settings: ProvisioningSettings,
    user_ids: Iterable[str] | None = None,
    *,
    now: datetime | None = None,
) -> AppPlan:
    """The operation each user needs (all users assigned or holding an account, or those given)."""
    wanted = None if user_ids is None else set(user_ids)
    assigned = sources_for(session, app_id, wanted)
    records = _accounts(session, app_id, wanted)
    candidates = wanted if wanted is not None else set(assigned) | {
        uid for uid, acc in records.items() if acc.status != AccountStatus.DELETED.value
    }
    users = _users(session, candidates)
    result = AppPlan(accounts=sum(1 for a in records.values() if a.status != AccountStatus.DELETED.value))
    for user_id in sorted(candidates, key=lambda uid: (users[uid].login_key if uid in users else uid)):
        row = users.get(user_id)
        record = records.get(user_id)
        actual = None if record is None else ActualAccount(
            record.remote_id, record.applied, AccountStatus(record.status), record.deactivated_at
        )
        login = row.login if row is not None else user_id
        if row is None:
            desired, reason = None, "removed from the directory"
        else:
            directory_user = DirectoryUser(row.id, UserStatus(row.status), row.profile)
            try:
                evaluation = evaluate(directory_user, assigned.get(user_id, ()), policy)
            except EvaluationError as exc:
                result.users.append(PlannedUser(user_id, login, "the policy failed for this user", error=exc.detail))
                continue
            desired, reason = evaluation.desired, evaluation.reason
        operation = plan(desired, actual, settings, policy.deprovisioning(settings), now=now)
        result.users.append(PlannedUser(user_id, login, reason, operation))
    return result


def _accounts(session: Session, app_id: str, user_ids: set[str] | None) -> dict[str, Account]:
    statement = select(Account).where(Account.app_id == app_id)
    if user_ids is None:
        return {a.user_id: a for a in session.scalars(statement)}
    found: dict[str, Account] = {}
    for chunk in _chunks(sorted(user_ids)):
        found.update({a.user_id: a for a in session.scalars(statement.where(Account.user_id.in_(chunk)))})
    return found


def _users(session: Session, user_ids: set[str]) -> dict[str, User]:
    found: dict[str, User] = {}
    for chunk in _chunks(sorted(user_ids)):
        found.update({u.id: u for u in session.scalars(select(User).where(User.id.in_(chunk)))})
    return found


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def describe(planned: PlannedUser) -> dict[str, Any]:
    """One preview line: the operation with its changes flattened attribute by attribute."""
    entry: dict[str, Any] = {"user_id": planned.user_id, "login": planned.login, "reason": planned.reason}
    if planned.error is not None:
        return {**entry, "operation": "error", "error": planned.error, "changes": []}
    operation = planned.operation
    assert operation is not None
    changes = [
        {"attribute": path, "old": old, "new": new}
        for change in operation.changes
        for path, old, new in flatten(change.attribute, change.old, change.new)
    ]
    return {**entry, "operation": operation.kind.value, "remote_id": operation.remote_id, "changes": changes}


def flatten(path: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """``name: {a, b} -> {a, c}`` becomes ``name.b: b -> None, name.c: None -> c``."""
    if isinstance(old, dict) or isinstance(new, dict):
        old_map = old if isinstance(old, dict) else {}
        new_map = new if isinstance(new, dict) else {}
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old_map) | set(new_map)):
            if old_map.get(key) != new_map.get(key):
                out.extend(flatten(f"{path}.{key}", old_map.get(key), new_map.get(key)))
        return out
    return [(path, old, new)]

