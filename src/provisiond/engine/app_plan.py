"""Plan many users of one app at once from the records (no app I/O): previews and safety checks.

Reads the directory, the assignments and the account records of the whole app in a handful of
bulk queries, skips the users whose inputs are unchanged since their last reconcile (their
fingerprint), and takes for every other user exactly the decision the worker takes
(engine.decide.snapshot): a preview is the worker's read and decide with the executor off.
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
from provisiond.engine.context import planning_context, role_settings_of
from provisiond.engine.decide import snapshot
from provisiond.engine.fingerprint import fingerprint, policy_key
from provisiond.engine.mapping import CompiledPolicy
from provisiond.engine.planner import DEPROVISIONS, AccountStatus, Operation
from provisiond.engine.reader import (
    CHUNK,
    AccountInputs,
    AccountRecord,
    UserRecord,
    chunks,
    effective_members,
)
from provisiond.engine.sources import index
from provisiond.store.tables import Account, Assignment, User, utcnow


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
        return {
            kind: counted.get(kind, 0)
            for kind in (
                "create",
                "update",
                "deactivate",
                "reactivate",
                "delete",
                "unchanged",
                "failed",
            )
        }

    @property
    def deprovisions(self) -> list[PlannedUser]:
        return [
            u for u in self.users if u.operation is not None and u.operation.kind in DEPROVISIONS
        ]


def sources_for(session: Session, app_id: str, user_ids: set[str] | None) -> dict[str, list[str]]:
    """How each user (all, or those given) is assigned to the app."""
    sources: dict[str, list[str]] = defaultdict(list)
    rows = (
        session.connection()
        .execute(
            select(Assignment.principal_type, Assignment.principal_id).where(
                Assignment.app_id == app_id
            )
        )
        .all()
    )
    groups = [pid for kind, pid in rows if kind == "group"]
    for kind, pid in rows:
        if kind == "user" and (user_ids is None or pid in user_ids):
            sources[pid].append("user")
    # Nested groups flattened: members of child groups are reached by the parent's assignment.
    for group_id, members in sorted(effective_members(session, groups).items()):
        for user_id in members:
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
    """The operation each user needs (all users assigned or holding an account, or those given).

    Users whose inputs hash to the fingerprint their account was last reconciled with are
    unchanged without evaluating anything (engine.fingerprint); the rest are evaluated and
    planned exactly as the worker would. Rows are read as tuples, not ORM objects: at 100,000
    users the object bookkeeping alone would cost more than the planning.
    """
    wanted = None if user_ids is None else set(user_ids)
    labels = sources_for(session, app_id, wanted)
    granting = index(session, app_id)  # only assignments that grant roles
    assigned = {uid: granting.of(uid, found) for uid, found in labels.items()}
    roles = role_settings_of(session, app_id, settings)
    records = _accounts(session, app_id, wanted)
    live = {uid for uid, rec in records.items() if rec.status != AccountStatus.DELETED.value}
    candidates = wanted if wanted is not None else set(assigned) | live
    users = _users(session, candidates)
    rule = policy.deprovisioning(settings)
    key = policy_key(policy.document, settings, roles)
    result = AppPlan(accounts=len(live))
    to_plan: list[str] = []
    for user_id in candidates:
        row, record = users.get(user_id), records.get(user_id)
        if (
            row is not None
            and record is not None
            and record.fingerprint is not None
            and not (
                rule.delete_after is not None and record.status == AccountStatus.DEACTIVATED.value
            )
            and record.fingerprint
            == fingerprint(key, row.id, row.status, row.profile, assigned.get(user_id, ()))
        ):
            result.users.append(
                PlannedUser(user_id, row.login, "unchanged since the last reconcile")
            )
        else:
            to_plan.append(user_id)
    applied = _applied(session, app_id, [uid for uid in to_plan if uid in records])
    ctx = planning_context(app_id, policy, settings, roles, key)
    at = now or utcnow()
    for user_id in to_plan:
        row, record = users.get(user_id), records.get(user_id)
        inputs = AccountInputs(
            user_id,
            None if row is None else UserRecord(row.id, row.login, row.status, row.profile),
            tuple(assigned.get(user_id, ())),
            None
            if record is None
            else AccountRecord(
                record.remote_id,
                applied.get(user_id, {}),
                record.status,
                record.deactivated_at,
                record.fingerprint,
            ),
        )
        # The very decision the worker takes for this key (engine.decide), executor off.
        snap = snapshot(ctx, inputs, None, queued_at=None, now=at)
        if snap.error is not None:
            result.users.append(
                PlannedUser(user_id, snap.user_label, snap.reason, error=snap.error)
            )
        else:
            result.users.append(PlannedUser(user_id, snap.user_label, snap.reason, snap.pending))
    order = {uid: (users[uid].login_key if uid in users else uid) for uid in candidates}
    result.users.sort(key=lambda planned: order[planned.user_id])
    return result


def _accounts(session: Session, app_id: str, user_ids: set[str] | None) -> dict[str, Any]:
    statement = select(
        Account.user_id,
        Account.remote_id,
        Account.status,
        Account.deactivated_at,
        Account.fingerprint,
    ).where(Account.app_id == app_id)
    if user_ids is None:
        return {row.user_id: row for row in session.connection().execute(statement)}
    found: dict[str, Any] = {}
    for chunk in chunks(user_ids):
        found.update(
            {
                row.user_id: row
                for row in session.connection().execute(statement.where(Account.user_id.in_(chunk)))
            }
        )
    return found


def _applied(session: Session, app_id: str, user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The last applied attributes, read only for the users that need planning."""
    found: dict[str, dict[str, Any]] = {}
    statement = select(Account.user_id, Account.applied).where(Account.app_id == app_id)
    for chunk in chunks(user_ids):
        found.update(
            {
                uid: applied
                for uid, applied in session.connection().execute(
                    statement.where(Account.user_id.in_(chunk))
                )
            }
        )
    return found


def _users(session: Session, user_ids: set[str]) -> dict[str, Any]:
    statement = select(User.id, User.login, User.login_key, User.status, User.profile)
    if len(user_ids) > 20 * CHUNK:  # most of the directory: one scan beats many IN lists
        return {
            row.id: row for row in session.connection().execute(statement) if row.id in user_ids
        }
    found: dict[str, Any] = {}
    for chunk in chunks(user_ids):
        found.update(
            {
                row.id: row
                for row in session.connection().execute(statement.where(User.id.in_(chunk)))
            }
        )
    return found


