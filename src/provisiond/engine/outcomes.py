"""What a reconcile leaves behind, as data: the task's transition, the account record, the events.

Pure: the writer (engine.writer) turns a batch of these into one short transaction, and the
property tests check them without a database. Retry-or-dead with backoff, the texts of the
activity log and the run counts are decided here, once, for account and group tasks alike.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from provisiond.engine.decide import Decision, Snapshot, Verdict, blocked_deprovision
from provisiond.engine.executor import ReadBack, Result
from provisiond.engine.planner import AccountStatus, ActualAccount, OperationKind
from provisiond.engine.queue import Claimed, backoff

ENGINE_ACTOR = "provisiond"
HELD_RECHECK = timedelta(minutes=10)  # approve/cancel make deferred tasks due at once

EVENT_ACTION = {
    OperationKind.CREATE: "app.user.provision",
    OperationKind.UPDATE: "app.user.update",
    OperationKind.REACTIVATE: "app.user.reactivate",
    OperationKind.DEACTIVATE: "app.user.deprovision",
    OperationKind.DELETE: "app.user.deprovision",
}


class Transition(enum.StrEnum):
    CLOSE = "close"  # succeeded, with an outcome for its run
    DISMISS = "dismiss"  # dropped with a cancelled run
    RETRY = "retry"  # queued again after a backoff
    DEAD = "dead"  # out of attempts, or terminal
    DEFER = "defer"  # put back untouched (a held run)


@dataclass(frozen=True)
class TaskWrite:
    transition: Transition
    outcome: str | None = None  # counted on the task's run (None: not yet)
    at: datetime | None = None  # RETRY / DEFER: when it is due again
    error: str | None = None
    operation: str | None = None
    # DEFER: the held run, re-read under a row lock when written: approved or cancelled since
    # the snapshot, the task is due at once instead of parked behind a hold that is over.
    held_run: str | None = None
    release_run: bool = False  # its run is done with it (a held run takes it over)


@dataclass(frozen=True)
class AccountWrite:
    remote_id: str | None
    status: str
    applied: dict[str, Any]
    deactivated_at: datetime | None
    fingerprint: str | None
    drift: list[dict[str, Any]] | None = None  # None: not read back, the stored drift stays


@dataclass
class Outcome:
    """One task's result, ready to be written."""

    task: Claimed
    write: TaskWrite
    account: AccountWrite | None = None
    account_error: str | None = None  # kept on the account record
    events: list[dict[str, Any]] = field(default_factory=list)  # written whoever owns the task
    owned_events: list[dict[str, Any]] = field(default_factory=list)  # only while it is ours
    state_changed: bool = False  # the account appeared, went or changed state
    deprovision: bool = False  # flushed at once: a leaver never waits for a batch to fill
    result: Result | None = None
    # The app answered 429 with Retry-After: (seconds, why). Pauses the app for the whole
    # cluster (engine.throttle), written whoever owns the task: it is the app's answer.
    pause: tuple[float, str] | None = None
    quarantine: str | None = None  # the app is to be quarantined, for this reason
    # What the app showed when the account was read back after a deprovisioning (the
    # receipt's evidence), written whoever owns the task: it is what the app said.
    readback: ReadBack | None = None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    ceiling_seconds: float


def event(
    task: Claimed,
    action: str,
    message: str,
    *,
    now: datetime,
    outcome: str = "success",
    user_id: str | None = None,
    targets: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An activity log row (store.tables.Event) by the engine."""
    return {
        "time": now,
        "actor": ENGINE_ACTOR,
        "action": action,
        "outcome": outcome,
        "app_id": task.app_id,
        "user_id": user_id,
        "targets": targets or {},
        "message": message,
        "details": details or {},
        "correlation_id": task.correlation_id,
    }


def failure(
    task: Claimed,
    error: str,
    *,
    dead: bool,
    retry_after: float | None,
    policy: RetryPolicy,
    action: str,
    doing: str,
    subject: str,
    app_name: str,
    user_id: str | None,
    targets: dict[str, Any],
    operation: str | None,
    now: datetime,
    delay: Callable[[int, float, float, float | None], float] = backoff,
    app_quarantined: bool = False,
) -> tuple[TaskWrite, list[dict[str, Any]]]:
    """Requeue a failed task with backoff, or, terminal or out of attempts, bury it; either
    way the activity log says so (``doing`` in ``app_name`` failed ...).

    ``app_quarantined``: this failure quarantined the app, so the task waits with the app's backlog
    instead of being buried for its last attempt (the failure was the app's, not the task's)."""
    if dead or (task.attempts >= policy.max_attempts and not app_quarantined):
        events = [
            event(
                task, action, f"{doing} in {app_name} failed: {error}", now=now,
                outcome="failure", user_id=user_id, targets=targets,
                details={"attempt": task.attempts, "error": error},
            ),
            event(
                task, "task.dead",
                f"task {task.id} for {subject} in {app_name} is dead after {task.attempts} "
                f"attempt(s): {error}",
                now=now, outcome="failure", user_id=user_id,
                targets={"task_id": task.id, **targets},
                details={"error": error, "terminal": dead},
            ),
        ]
        return TaskWrite(Transition.DEAD, "failed", error=error, operation=operation), events
    seconds = delay(task.attempts, policy.base_seconds, policy.ceiling_seconds, retry_after)
    retry = event(
        task, action,
        f"{doing} in {app_name} failed (attempt {task.attempts}), retrying in {seconds:.1f} s: "
        f"{error}",
        now=now, outcome="retry", user_id=user_id, targets=targets,
        details={"attempt": task.attempts, "error": error, "retry_in_seconds": round(seconds, 3)},
    )
    write = TaskWrite(
        Transition.RETRY, at=now + timedelta(seconds=seconds), error=error, operation=operation
    )
    return write, [retry]


def _targets(snap: Snapshot, **more: Any) -> dict[str, Any]:
    return {"app": snap.ctx.name, "user": snap.user_label, **more}


def not_applied(task: Claimed, snap: Snapshot, decision: Decision, policy: RetryPolicy,
                now: datetime) -> Outcome:
    """The outcome of a decision that sends nothing: fail, defer, drop or skip."""
    pending = snap.pending
    result = Result()
    result.step("scope", snap.reason, policy_version=snap.ctx.policy.version or 0)
    if decision.verdict is Verdict.FAIL:
        assert snap.error is not None
        result.step("error", snap.error)
        result.outcome = "failed"
        return account_failure(task, snap, snap.error, dead=True, retry_after=None,
                               policy=policy, now=now, result=result)
    if decision.verdict in (Verdict.DEFER, Verdict.DROP):
        assert pending is not None and decision.run_id is not None
        held = decision.verdict is Verdict.DEFER
        # Held: deferred, not dropped (approving or cancelling makes it due). Cancelled: the
        # task was part of the change the admin cancelled.
        verdict = "deferred: held by" if held else "dropped: cancelled with"
        result.step("held", f"{verdict} run {decision.run_id}")
        result.outcome = "skipped"
        message = (
            f"{pending.kind.value} of {snap.user_label} in {snap.ctx.name} {verdict} "
            f"run {decision.run_id}"
        )
        events = [
            event(task, EVENT_ACTION[pending.kind], message, now=now, outcome="skipped",
                  user_id=snap.user_id, targets=_targets(snap, run_id=decision.run_id))
        ]
        write = (
            TaskWrite(Transition.DEFER, "skipped", at=now + HELD_RECHECK,
                      held_run=decision.run_id, release_run=True)
            if held
            else TaskWrite(Transition.DISMISS, "skipped", release_run=True,
                           error=f"cancelled with held run {decision.run_id}")
        )
        return Outcome(task, write, owned_events=events, result=result)
    assert decision.verdict is Verdict.SKIP
    result.step("skip", "provisioning is disabled")
    result.outcome = "skipped"
    events = []
    if pending is not None:
        events.append(
            event(
                task, EVENT_ACTION[pending.kind],
                f"{pending.kind.value} of {snap.user_label} in {snap.ctx.name} "
                "skipped: provisioning is disabled",
                now=now, outcome="skipped", user_id=snap.user_id, targets=_targets(snap),
            )
        )
    return Outcome(task, TaskWrite(Transition.CLOSE, "skipped"), owned_events=events,
                   result=result)


def waits_for_pause(task: Claimed, until: datetime) -> Outcome:
    """Not sent: the app is paused (it answered 429); the task waits for the end of the pause,
    its attempt undone, in no run's count yet."""
    return Outcome(task, TaskWrite(Transition.DEFER, at=until))


def account_failure(
    task: Claimed, snap: Snapshot, error: str, *, dead: bool, retry_after: float | None,
    policy: RetryPolicy, now: datetime, result: Result | None = None, app_quarantined: bool = False,
) -> Outcome:
    pending = snap.pending
    write, events = failure(
        task, error, dead=dead, retry_after=retry_after, policy=policy, app_quarantined=app_quarantined,
        action=EVENT_ACTION[pending.kind] if pending else "app.user.sync",
        doing=f"{pending.kind.value if pending else 'sync'} of {snap.user_label}",
        subject=snap.user_label, app_name=snap.ctx.name, user_id=snap.user_id,
        targets=_targets(snap), operation=pending.kind.value if pending else None, now=now,
    )
    readback = result.readback if result is not None else None
    alarm = [] if readback is None or readback.confirmed else [
        not_revoked_alarm(task, snap, readback, write, now)
    ]
    return Outcome(task, write, account_error=error, owned_events=events, result=result,
                   events=alarm, readback=readback,
                   deprovision=pending is not None and pending.kind in EVENT_ACTION
                   and EVENT_ACTION[pending.kind] == "app.user.deprovision")


def not_revoked_alarm(
    task: Claimed, snap: Snapshot, readback: ReadBack, write: TaskWrite, now: datetime
) -> dict[str, Any]:
    """The alarm for an app that answered a deprovisioning but still shows the account."""
    then = "the task is dead" if write.transition is Transition.DEAD else "retrying"
    return event(
        task, "app.user.revocation.unconfirmed",
        f"ALARM: {snap.ctx.name} accepted the {readback.action} of {snap.user_label} but still "
        f"shows account {readback.remote_id} {readback.state} when read back; {then}",
        now=now, outcome="failure", user_id=snap.user_id,
        targets=_targets(snap, remote_id=readback.remote_id),
        details={"alarm": True, "action": readback.action, "read_state": readback.state,
                 "read_at": readback.at.isoformat(), "attempt": task.attempts},
    )


def _state(account: ActualAccount | None) -> tuple[str | None, str | None]:
    return (None, None) if account is None else (account.remote_id, account.status.value)


def applied(task: Claimed, snap: Snapshot, result: Result, now: datetime) -> Outcome:
    """The outcome of a reconcile that went through (``result.operation`` may be None)."""
    account = result.account
    write_account = None
    if account is not None:
        record = snap.record
        deactivated = account.status is AccountStatus.DEACTIVATED
        if deactivated and (record is None or record.status != account.status.value):
            deactivated_at: datetime | None = now
        elif deactivated:
            deactivated_at = record.deactivated_at if record else now
        else:
            deactivated_at = None
        write_account = AccountWrite(
            remote_id=account.remote_id,
            status=account.status.value,
            applied=managed(account.attributes),
            deactivated_at=deactivated_at,
            fingerprint=snap.fingerprint,
            drift=result.drift,
        )
    operation = result.operation
    events: list[dict[str, Any]] = []
    if result.drift:
        events.append(
            event(
                task, "app.account.drift",
                f"{snap.user_label}'s account in {snap.ctx.name} was changed in the app: "
                + ", ".join(entry["attribute"] for entry in result.drift)
                + (" (reported only)" if snap.ctx.provisioning.imports.drift == "report" else ""),
                now=now, outcome="skipped", user_id=snap.user_id,
                targets=_targets(snap, remote_id=account.remote_id if account else None),
                details={"drift": result.drift, "mode": snap.ctx.provisioning.imports.drift},
            )
        )
    if operation is not None:
        latency_ms = round((now - task.created_at).total_seconds() * 1000)
        events.append(
            event(
                task, EVENT_ACTION[operation.kind],
                f"{operation.kind.value} of {snap.user_label} in {snap.ctx.name} succeeded",
                now=now, user_id=snap.user_id,
                targets=_targets(snap, remote_id=account.remote_id if account else None),
                details={
                    **operation.describe(), "attempt": task.attempts, "latency_ms": latency_ms,
                    "policy_version": snap.ctx.policy.version or 0, "trace": result.trace,
                },
            )
        )
    elif blocked := blocked_deprovision(snap):
        events.append(
            event(
                task, "app.user.deprovision",
                f"deprovisioning of {snap.user_label} in {snap.ctx.name} skipped: {blocked}",
                now=now, outcome="skipped", user_id=snap.user_id, targets=_targets(snap),
            )
        )
    return Outcome(
        task,
        TaskWrite(Transition.CLOSE, result.outcome,
                  operation=operation.kind.value if operation else None),
        account=write_account,
        events=events,
        state_changed=_state(snap.actual) != _state(account),
        deprovision=operation is not None and EVENT_ACTION[operation.kind] == "app.user.deprovision",
        result=result,
        readback=result.readback,
    )


def managed(attributes: Any) -> dict[str, Any]:
    """What the record keeps of the attributes sent: never the password, nor the app's meta."""
    return {k: v for k, v in dict(attributes).items() if k not in ("meta", "schemas", "password")}
