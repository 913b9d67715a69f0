"""The reconciler of pushed groups: one task reconciles one (app, directory group) key.

Read the desired members and the record in one short transaction, send the difference
(engine.groups), record the outcome: the same lease and ownership rules as for accounts
(engine.worker), so a task that overran its lease records the app's group but not the task.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, insert, literal
from sqlalchemy.orm import Session

from provisiond.domain.apps import AnyConnectorSettings, ProvisioningSettings
from provisiond.engine import group_members, queue, throttle
from provisiond.engine.context import read_context
from provisiond.engine.executor import Result
from provisiond.engine.group_members import PUSHED, UNPUSHING
from provisiond.engine.groups import GroupActual, GroupOutcome, reconcile_group
from provisiond.engine.outcomes import ENGINE_ACTOR, RetryPolicy, Transition, failure
from provisiond.engine.writer import count_outcomes
from provisiond.errors import ConnectorError, RateLimited
from provisiond.store import rollups
from provisiond.store.db import Database
from provisiond.store.events import add_event
from provisiond.store.secrets import Vault
from provisiond.store.tables import Event, Group, PushedGroup, Task, User, utcnow


class Worker(Protocol):
    """What a group reconcile needs of the worker running it (engine.worker.Worker)."""

    db: Database
    retry_policy: RetryPolicy

    @property
    def pool(self) -> Any: ...


LISTED = 100  # logins named in one membership event; the counts are always complete


@dataclass
class GroupSnapshot:
    app_id: str
    app_name: str
    app_version: str
    connector: AnyConnectorSettings | None
    provisioning: ProvisioningSettings
    pushed_id: str
    group_id: str
    name: str
    state: str  # pushed | unpushing | gone (the directory group was deleted)
    unpush_action: str
    actual: GroupActual | None
    applied: dict[str, str | None]
    desired: dict[str, str]
    # The last attempt failed: a write may have been applied (a timeout) or half-applied (a
    # later batch refused), so the app's group is read back before planning, whatever the task.
    unsure: bool = False

    @property
    def leaving(self) -> bool:
        return self.state != PUSHED


def group_snapshot(session: Session, vault: Vault, app_id: str, group_id: str) -> GroupSnapshot | None:
    ctx = read_context(session, vault, app_id)
    pushed = session.query(PushedGroup).filter_by(app_id=app_id, group_id=group_id).one_or_none()
    if ctx is None or pushed is None:
        return None
    group = session.get(Group, group_id)
    state = pushed.state if group is not None else "gone"
    if group is not None and group.name != pushed.group_name:
        pushed.group_name = group.name  # shown in listings before the rename is applied
    applied = group_members.applied(session, pushed.id)
    actual = (
        None
        if pushed.remote_id is None
        else GroupActual(pushed.remote_id, pushed.remote_name or "", frozenset(applied))
    )
    return GroupSnapshot(
        app_id=ctx.app_id,
        app_name=ctx.name,
        app_version=ctx.version,
        connector=ctx.connector,
        provisioning=ctx.provisioning,
        pushed_id=pushed.id,
        group_id=group_id,
        name=group.name if group is not None else pushed.group_name,
        state=state,
        unpush_action=pushed.unpush_action,
        actual=actual,
        applied=applied,
        desired={}
        if group is None or state != PUSHED
        else group_members.desired_members(
            session, ctx.app_id, ctx.provisioning.role_mode, group.id, group.name
        ),
        unsure=pushed.last_error is not None,
    )


async def execute_group(
    worker: Worker, task_id: str, lease: datetime, snap: GroupSnapshot, *, verify: bool
) -> Result:
    with worker.db.session() as session:
        task = session.get(Task, task_id)
        assert task is not None
        correlation, claimed_by = task.correlation_id, task.claimed_by
    actor = correlation  # the events of this reconcile carry the change's correlation id
    targets = {"app": snap.app_name, "group": snap.name, "group_id": snap.group_id}

    def owned(session: Session) -> Task | None:
        task = session.get(Task, task_id)
        if task is None or task.status != queue.RUNNING or task.claimed_by != claimed_by:
            return None
        return task if task.claimed_at == lease else None

    def close(session: Session, outcome: str) -> None:
        if (task := owned(session)) is not None:
            close_task(session, task, queue.SUCCEEDED, outcome)

    if not snap.provisioning.enabled or not snap.provisioning.features.push_groups:
        why = (
            "provisioning is disabled"
            if not snap.provisioning.enabled
            else "the app's push_groups feature is off"
        )
        result = Result(outcome="skipped")
        result.step("skip", why)
        with worker.db.session() as session:
            _event(
                session, actor, "app.group.sync",
                f"group {snap.name} in {snap.app_name} not reconciled: {why}",
                outcome="skipped", app_id=snap.app_id, targets=targets,
            )
            close(session, "skipped")
        return result

    connector = await worker.pool.get(snap)
    try:
        if snap.leaving:
            return await _leave(worker, snap, connector, actor, targets, owned, close)
        outcome = await reconcile_group(
            connector, snap.name, snap.desired, snap.actual, verify=verify or snap.unsure
        )
    except ConnectorError as exc:
        result = Result(outcome="failed")
        result.step("error", exc.detail, retryable=exc.retryable)
        with worker.db.session() as session:
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                # The app's answer to every task, not just this one (engine.throttle).
                throttle.pause(session, snap.app_id, exc.retry_after,
                               f"HTTP 429, Retry-After {exc.retry_after:.1f} s",
                               correlation_id=correlation)
            task = owned(session)
            if task is None:  # no longer this worker's: keep the error for the next one
                pushed = session.get(PushedGroup, snap.pushed_id)
                if pushed is not None:
                    pushed.last_error = exc.detail
            else:
                fail_group(
                    worker, session, task, snap, exc.detail, dead=not exc.retryable,
                    retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
                )
        return result

    with worker.db.session() as session:
        _record(session, actor, snap, outcome, targets)
        close(session, _outcome_word(outcome))
    return outcome.result


async def _leave(
    worker: Worker, snap: GroupSnapshot, connector: Any, actor: str,
    targets: dict[str, Any], owned: Any, close: Any,
) -> Result:
    result = Result()
    why = "its directory group was deleted" if snap.state == "gone" else "unpushed"
    remote = snap.actual.remote_id if snap.actual else None
    if snap.unpush_action == "delete" and remote is None:
        # Never recorded (a create whose member PATCH failed): find it by name to delete it.
        found = await connector.find_group(snap.name)
        remote = found.remote_id if found is not None else None
    if snap.unpush_action == "delete" and remote is not None:
        await connector.delete_group(remote)
        result.step("delete", f"deleted group {snap.name} ({remote}) in the app", id=remote)
        action, message, result.outcome = (
            "app.group.delete", f"deleted group {snap.name} in {snap.app_name}: {why}", "deleted",
        )
    else:
        result.step("leave", f"left group {snap.name} in the app as it is")
        action, message, result.outcome = (
            "app.group.unpush",
            f"stopped pushing group {snap.name} to {snap.app_name} ({why}); "
            "the app's group was left as it is",
            "unchanged",
        )
    with worker.db.session() as session:
        # Pushed again while this ran: the row stays, and the push's task re-creates the
        # group (it reads the app first, so a deleted group is found gone). One conditional
        # DELETE, so a push committed meanwhile is never deleted with it.
        gone = session.get(Group, snap.group_id) is None
        session.execute(
            delete(PushedGroup).where(
                PushedGroup.id == snap.pushed_id,
                (PushedGroup.state == UNPUSHING) | literal(gone),
            )
        )
        _event(
            session, actor, action, message, app_id=snap.app_id,
            targets={**targets, "remote_id": remote}, details={"trace": result.trace},
        )
        close(session, result.outcome)
    return result


def _event(session: Session, correlation_id: str, action: str, message: str, **more: Any) -> None:
    add_event(
        session, actor=ENGINE_ACTOR, correlation_id=correlation_id, action=action,
        message=message, **more,
    )


def _outcome_word(outcome: GroupOutcome) -> str:
    if outcome.created:
        return "created"
    return "unchanged" if outcome.plan.empty and not outcome.linked else "updated"


def _record(
    session: Session, actor: str, snap: GroupSnapshot, outcome: GroupOutcome, targets: dict[str, Any]
) -> None:
    pushed = session.get(PushedGroup, snap.pushed_id)
    group = outcome.group
    if pushed is None or group is None:
        return
    after: dict[str, str | None] = {remote_id: snap.desired.get(remote_id) for remote_id in group.members}
    # Read again rather than trusting the snapshot: a task that overran its lease may share the
    # key with its successor, and the rows must end as what this write left in the app.
    before = group_members.applied(session, pushed.id)
    group_members.store_members(session, pushed.id, before, after)
    pushed.remote_id, pushed.remote_name = group.remote_id, group.name
    pushed.linked = pushed.linked or outcome.linked
    pushed.last_synced_at, pushed.last_error, pushed.updated_at = utcnow(), None, utcnow()
    targets = {**targets, "remote_id": group.remote_id}
    plan = outcome.plan
    details: dict[str, Any] = {"requests": outcome.requests, "trace": outcome.result.trace}
    if outcome.created:
        _event(
            session, actor, "app.group.create",
            f"created group {snap.name} in {snap.app_name} with {len(group.members)} members",
            app_id=snap.app_id, targets=targets,
            details={**details, "members": len(group.members), "recreated": outcome.recreated},
        )
        return
    if outcome.linked:
        _event(
            session, actor, "app.group.link",
            f"linked group {snap.name} to the group of that name already in {snap.app_name}"
            + (
                f"; its members differed ({len(plan.add)} missing, {len(plan.remove)} not "
                "in the directory group) and were corrected"
                if plan.add or plan.remove
                else "; its members already matched"
            ),
            app_id=snap.app_id, targets=targets, details=details,
        )
    if outcome.drift is not None:
        _event(
            session, actor, "app.group.drift",
            f"group {snap.name} in {snap.app_name} had been changed in the app "
            f"({outcome.drift['unexpected']} unexpected, {outcome.drift['missing']} missing "
            "members); corrected",
            outcome="success", app_id=snap.app_id, targets=targets,
            details={**details, **outcome.drift},
        )
    if plan.rename is not None:
        old = snap.actual.name if snap.actual else None
        _event(
            session, actor, "app.group.rename",
            f"renamed group {old} to {plan.rename} in {snap.app_name}",
            app_id=snap.app_id, targets=targets, details={"old": old, "new": plan.rename},
        )
    if plan.add or plan.remove:
        logins = _logins(session, [*plan.add[:LISTED], *plan.remove[:LISTED]], snap, before)
        _event(
            session, actor, "app.group.membership.update",
            f"group {snap.name} in {snap.app_name}: {len(plan.add)} added, "
            f"{len(plan.remove)} removed",
            app_id=snap.app_id, targets=targets,
            details={
                **details,
                "added": len(plan.add),
                "removed": len(plan.remove),
                "added_users": [logins.get(r, r) for r in plan.add[:LISTED]],
                "removed_users": [logins.get(r, r) for r in plan.remove[:LISTED]],
                "method": "PUT" if plan.replace else "PATCH",
            },
        )


def _logins(
    session: Session, remote_ids: list[str], snap: GroupSnapshot, before: dict[str, str | None]
) -> dict[str, str]:
    by_user = {r: snap.desired.get(r) or before.get(r) for r in remote_ids}
    ids = sorted({u for u in by_user.values() if u})
    users = {u.id: u.login for u in session.query(User).filter(User.id.in_(ids))} if ids else {}
    return {r: users[u] for r, u in by_user.items() if u and u in users}


def fail_group(
    worker: Worker, session: Session, task: Task, snap: GroupSnapshot | None, error: str,
    *, dead: bool, retry_after: float | None,
) -> None:
    """A group task failed (``snap`` None: it crashed). The pushed group keeps the error, so
    its next task, whichever it is, reads the app's group back before planning."""
    pushed = session.query(PushedGroup).filter_by(
        app_id=task.app_id, group_id=task.subject_id
    ).one_or_none()
    if pushed is not None:
        pushed.last_error = error
    name = snap.name if snap else (pushed.group_name if pushed else task.subject_id)
    app_name = snap.app_name if snap else task.app_id
    task.operation = "unpush" if snap and snap.leaving else "push"
    retry_or_bury(
        session, task, worker.retry_policy, error, dead=dead, retry_after=retry_after,
        action="app.group.sync", doing=f"reconciling group {name}", subject=f"group {name}",
        app_name=app_name, user_id=None,
        targets={"app": app_name, "group": name, "group_id": task.subject_id},
    )


def close_task(session: Session, task: Task, status: str, outcome: str) -> None:
    task.status = status
    task.updated_at = utcnow()
    task.last_error = None if status == queue.SUCCEEDED else task.last_error
    if task.run_id:
        count_outcomes(session, task.run_id, Counter({outcome: 1}), utcnow())


def retry_or_bury(
    session: Session,
    task: Task,
    policy: RetryPolicy,
    error: str,
    *,
    dead: bool,
    retry_after: float | None,
    action: str,
    doing: str,
    subject: str,
    app_name: str,
    user_id: str | None,
    targets: dict[str, Any],
) -> None:
    """A group task failed: requeued with backoff, or dead (engine.outcomes.failure)."""
    now = utcnow()
    write, events = failure(
        queue.Claimed.of(task), error, dead=dead, retry_after=retry_after, policy=policy,
        action=action, doing=doing, subject=subject, app_name=app_name, user_id=user_id,
        targets=targets, operation=task.operation, now=now,
    )
    session.execute(insert(Event), events)
    rollups.add(session, events)
    if write.transition is Transition.DEAD:
        task.status, task.last_error, task.updated_at = queue.DEAD, error, now
        if task.run_id:
            count_outcomes(session, task.run_id, Counter({"failed": 1}), now)
        return
    assert write.at is not None
    queue.requeue(session, task, at=write.at, error=error)
