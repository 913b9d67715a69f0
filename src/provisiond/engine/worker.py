"""The worker: claims due tasks and reconciles them, event-driven, any number per database.

``serve`` runs one in a thread beside the API, woken the moment a transaction that queued tasks
commits; ``provisiond worker`` runs one on its own, woken by PostgreSQL ``NOTIFY``. A short poll
remains only as a floor for retries that come due and for notifications lost with a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisiond.config import Settings
from provisiond.connectors.base import Connector
from provisiond.connectors.registry import build_connector
from provisiond.domain.apps import (
    Deprovision,
    DeprovisionAction,
    ProvisioningSettings,
    ScimConnectorSettings,
)
from provisiond.domain.directory import UserStatus
from provisiond.engine import queue
from provisiond.engine.desired import DesiredAccount, DirectoryUser, evaluate
from provisiond.engine.executor import Result, reconcile
from provisiond.engine.fingerprint import fingerprint, policy_key
from provisiond.engine.group_worker import (
    GroupSnapshot,
    execute_group,
    fail_group,
    group_snapshot,
)
from provisiond.engine.mapping import CompiledPolicy
from provisiond.engine.planner import AccountStatus, ActualAccount, Operation, OperationKind, plan
from provisiond.errors import ConnectorError, RateLimited
from provisiond.expressions import EvaluationError
from provisiond.services import activity, policies, pushes, runs
from provisiond.services.apps import provisioning_of, settings_of
from provisiond.services.context import Actor
from provisiond.services.planning import DEPROVISIONS
from provisiond.services.secrets import Vault
from provisiond.services.sources import role_settings, sources_of_user
from provisiond.store.db import Database
from provisiond.store.tables import Account, App, Task, User, utcnow

log = logging.getLogger("provisiond.worker")
ENGINE_ACTOR = "provisiond"
IDLE_POLL_SECONDS = 5.0
HOUSEKEEPING_SECONDS = 300.0
HELD_RECHECK = timedelta(minutes=10)  # approve/cancel make deferred tasks due at once

EVENT_ACTION = {
    OperationKind.CREATE: "app.user.provision",
    OperationKind.UPDATE: "app.user.update",
    OperationKind.REACTIVATE: "app.user.reactivate",
    OperationKind.DEACTIVATE: "app.user.deprovision",
    OperationKind.DELETE: "app.user.deprovision",
}


@dataclass
class Snapshot:
    """Everything a reconcile needs, read in one short transaction."""

    app_id: str
    app_name: str
    app_version: str
    connector: ScimConnectorSettings
    provisioning: ProvisioningSettings
    policy: CompiledPolicy
    user_label: str
    desired: DesiredAccount | None
    actual: ActualAccount | None
    reason: str  # why the user has (or has not) an account, for the trace
    error: str | None = None  # the policy failed for this user
    # A held run that defers this user's deprovisioning, or a cancelled one that drops it.
    held_by: tuple[str, str] | None = None
    fingerprint: str | None = None  # of the inputs, kept on the account once reconciled

    @property
    def deprovision(self) -> Deprovision:
        return self.policy.deprovisioning(self.provisioning)

    def pending(self) -> Operation | None:
        """What the records say must happen (before any read of the app)."""
        if self.error is not None:
            return None
        return plan(self.desired, self.actual, self.provisioning, self.deprovision, now=utcnow())


def snapshot(
    session: Session, vault: Vault, app_id: str, user_id: str, queued_at: datetime | None = None
) -> Snapshot | None:
    app = session.get(App, app_id)
    if app is None:
        return None
    policy = policies.compiled(session, app_id)
    user = session.get(User, user_id)
    provisioning, connector = _app_inputs(app, vault)
    desired, reason, error, inputs = None, "removed from the directory", None, None
    if user is not None:
        roles = role_settings(session, app_id, provisioning)
        # An app without roles has no role-granting assignment to read.
        granted_by = sources_of_user(session, app_id, user_id, with_roles=bool(roles.kinds))
        key = policy_key(policy.document, provisioning, roles)
        inputs = fingerprint(key, user.id, user.status, user.profile, granted_by)
        directory_user = DirectoryUser(user.id, UserStatus(user.status), user.profile)
        try:
            evaluation = evaluate(directory_user, granted_by, policy, roles)
            desired, reason = evaluation.desired, evaluation.reason
        except EvaluationError as exc:
            reason, error = "the policy failed for this user", exc.detail
    record = session.query(Account).filter_by(app_id=app_id, user_id=user_id).one_or_none()
    actual = (
        None
        if record is None
        else ActualAccount(
            record.remote_id, record.applied, AccountStatus(record.status), record.deactivated_at
        )
    )
    snap = Snapshot(
        app_id=app.id,
        app_name=app.name,
        app_version=app.updated_at.isoformat(),
        connector=connector,
        provisioning=provisioning,
        policy=policy,
        user_label=user.login if user else user_id,
        desired=desired,
        actual=actual,
        reason=reason,
        error=error,
        fingerprint=inputs,
    )
    pending = snap.pending()
    if pending is not None and pending.kind in DEPROVISIONS:  # only a deprovision is held
        snap.held_by = runs.holding(session, app_id, user_id, queued_at)
    return snap


# An app's settings as the worker uses them, per app and version (``updated_at`` changes with
# every change of connector, credentials or provisioning settings): validating them and
# decrypting the credentials for every task was a measurable share of the worker's time.
_APP_INPUTS: dict[tuple[str, int], tuple[str, ProvisioningSettings, ScimConnectorSettings]] = {}


def _app_inputs(app: App, vault: Vault) -> tuple[ProvisioningSettings, ScimConnectorSettings]:
    key, version = (app.id, id(vault)), f"{app.updated_at.isoformat()}|{app.credentials}"
    hit = _APP_INPUTS.get(key)
    if hit is not None and hit[0] == version:
        return hit[1], hit[2]
    if len(_APP_INPUTS) > 1024:
        _APP_INPUTS.clear()
    inputs = provisioning_of(app), settings_of(app, vault)
    _APP_INPUTS[key] = (version, *inputs)
    return inputs


def _state(account: ActualAccount | None) -> tuple[str | None, str | None]:
    return (None, None) if account is None else (account.remote_id, account.status.value)


def _blocked_deprovision(snap: Snapshot) -> str | None:
    """Why an account that should go is kept, when the settings, not the planner, keep it."""
    actual = snap.actual
    if snap.desired is not None or actual is None or not actual.exists:
        return None
    if actual.status is not AccountStatus.ACTIVE:
        return None
    if not snap.provisioning.features.deactivate_users:
        return "the app's deactivate_users feature is off"
    if snap.deprovision.action is DeprovisionAction.NONE:
        return "the deprovisioning action is none"
    return None


def store_account(
    session: Session, app_id: str, user_id: str, result: Result, inputs: str | None = None
) -> None:
    account = result.account
    if account is None:
        return
    record = session.query(Account).filter_by(app_id=app_id, user_id=user_id).one_or_none()
    if record is None:
        record = Account(app_id=app_id, user_id=user_id, applied={}, status="active")
        session.add(record)
    record.remote_id = account.remote_id
    if account.status is AccountStatus.DEACTIVATED and record.status != account.status.value:
        record.deactivated_at = utcnow()
    elif account.status is not AccountStatus.DEACTIVATED:
        record.deactivated_at = None
    record.status = account.status.value
    record.applied = _managed(account.attributes)
    record.last_synced_at = utcnow()
    record.last_error = None
    record.fingerprint = inputs


def _managed(attributes: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(attributes).items() if k not in ("meta", "schemas", "password")}


class ConnectorPool:
    """One connector per app (pooled connections), rebuilt when the app's settings change."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._items: dict[str, tuple[str, Connector]] = {}
        self._transport = transport

    async def get(self, snap: Snapshot | GroupSnapshot) -> Connector:
        current = self._items.get(snap.app_id)
        if current is not None and current[0] == snap.app_version:
            return current[1]
        connector = build_connector(snap.connector, snap.provisioning, self._transport)
        self._items[snap.app_id] = (snap.app_version, connector)
        if current is not None:
            await current[1].aclose()
        return connector

    async def aclose(self) -> None:
        for _, connector in self._items.values():
            await connector.aclose()
        self._items.clear()


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        vault: Vault,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        capacity: int = 32,
    ) -> None:
        self.db = db
        self.settings = settings
        self.vault = vault
        self.capacity = capacity
        self.id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.pool = ConnectorPool(transport)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._claim_batch = max(1, capacity // 4)
        self._per_app: dict[str, int] = {}  # tasks in flight per app
        self._concurrency: dict[str, int] = {}  # each app's limit, as last read

    # -- waking ------------------------------------------------------------------------------

    def wake(self) -> None:
        """Thread-safe: have the worker look for due tasks now."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # -- main loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        next_sweep = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_sweep:
                    self._housekeeping()
                    next_sweep = time.monotonic() + HOUSEKEEPING_SECONDS
                self._wake.clear()
                claimed = await self._claim()
                for task_id, app_id in claimed:
                    self._per_app[app_id] = self._per_app.get(app_id, 0) + 1
                    job = asyncio.create_task(self._run_one(task_id, app_id))
                    self._inflight.add(job)
                    job.add_done_callback(self._finished)
                if claimed and len(self._inflight) < self.capacity:
                    continue
                await self._idle(stop)
        finally:
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            await self.pool.aclose()

    def _housekeeping(self) -> None:
        """Requeue tasks of workers that died; queue accounts due for deletion."""
        try:
            with self.db.session() as session:
                queue.release_expired_leases(session)
                runs.sweep_expired(session)
        except Exception:  # housekeeping must never stop the worker; it is retried later
            log.exception("worker housekeeping failed")

    def _finished(self, job: asyncio.Task[None]) -> None:
        self._inflight.discard(job)
        # A freed slot is worth a claim once a batch of them is free (a claim costs a
        # transaction), or when nothing runs. New work wakes the worker through wake() anyway.
        room = self.capacity - len(self._inflight)
        if self._wake is not None and (room >= self._claim_batch or not self._inflight):
            self._wake.set()

    async def _idle(self, stop: asyncio.Event) -> None:
        assert self._wake is not None
        timeout = IDLE_POLL_SECONDS
        if len(self._inflight) < self.capacity:  # at capacity, a finished task wakes us anyway
            with self.db.session() as session:
                due = queue.next_due(session)
            if due is not None:
                timeout = max(0.0, min(timeout, (due - utcnow()).total_seconds()))
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        _, pending = await asyncio.wait(
            waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in pending:
            waiter.cancel()

    async def _claim(self) -> list[tuple[str, str]]:
        room = self.capacity - len(self._inflight)
        if room <= 0:
            return []
        full = [
            app_id
            for app_id, running in self._per_app.items()
            if running >= self._concurrency.get(app_id, 1)
        ]
        try:
            with self.db.session() as session:
                return [
                    (t.id, t.app_id) for t in queue.claim(session, self.id, room, skip_apps=full)
                ]
        except IntegrityError:
            # An on-demand run took one of these keys in the same instant (uq_tasks_running_key):
            # nothing was claimed; the next round claims what is still queued.
            return []

    async def drain(self, timeout: float = 30.0) -> None:
        """Run until no task is due or running (for tests, benchmarks and one-shot commands)."""
        stop = asyncio.Event()
        runner = asyncio.create_task(self.run(stop))
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                with self.db.session() as session:
                    due = queue.next_due(session)
                    busy = session.query(Task).filter(Task.status == queue.RUNNING).count()
                if (
                    not busy
                    and not self._inflight
                    and (due is None or due > utcnow() + timedelta(seconds=1))
                ):
                    return
        finally:
            stop.set()
            await runner

    # -- one task ----------------------------------------------------------------------------

    async def _run_one(self, task_id: str, app_id: str) -> None:
        try:
            await self.execute(task_id)
        except Exception as exc:  # a bug must not kill the loop; the task is marked dead below
            log.exception("task %s of app %s crashed", task_id, app_id)
            with self.db.session() as session:
                task = session.get(Task, task_id)
                if task is not None and task.status == queue.RUNNING:
                    self._fail(
                        session, task, None, f"internal error: {type(exc).__name__}", dead=True
                    )
        finally:
            self._per_app[app_id] -= 1
            if not self._per_app[app_id]:
                del self._per_app[app_id]

    async def execute(self, task_id: str) -> Result | None:
        """Reconcile one claimed task; the result carries the step-by-step trace.

        The snapshot is read only once the app's concurrency gate is passed, and the task's
        lease is renewed then; every write at the end checks the lease is still this worker's.
        A worker that overran its lease (the task was requeued and may carry a newer change)
        still records what it did to the account, but leaves the task to its new owner.
        """
        with self.db.session() as session:
            task = session.get(Task, task_id)
            if task is None or task.status != queue.RUNNING:
                return None
            app_id = task.app_id
            if app_id not in self._concurrency:
                app = session.get(App, app_id)
                self._concurrency[app_id] = provisioning_of(app).concurrency if app else 1
        concurrency = self._concurrency[app_id]
        gate = self._gates.setdefault(f"{app_id}:{concurrency}", asyncio.Semaphore(concurrency))
        async with gate:
            return await self._execute_owned(task_id)

    async def _execute_owned(self, task_id: str) -> Result | None:
        with self.db.session() as session:
            task = session.get(Task, task_id)
            if task is None or task.status != queue.RUNNING:
                return None  # requeued while it waited for the gate: its new owner runs it
            task.claimed_at = lease = utcnow()  # renew the lease: the work starts now
            kind, group_snap, snap = task.kind, None, None
            if kind == "group":
                group_snap = group_snapshot(session, self.vault, task.app_id, task.user_id)
                if group_snap is None:  # no longer pushed, or the app is gone: nothing to do
                    self._close(session, task, queue.SUCCEEDED, "unchanged")
            else:
                snap = snapshot(session, self.vault, task.app_id, task.user_id, task.updated_at)
            user_id, verify, correlation = task.user_id, task.verify_remote, task.correlation_id
            created_at, claimed_by, attempts = task.created_at, task.claimed_by, task.attempts
        if kind == "group":
            if group_snap is None:
                return None
            # A retry reads the app's group first: a write that timed out may have been applied.
            retried = attempts > 1
            return await execute_group(
                self, task_id, lease, group_snap, verify=verify or retried
            )
        if snap is None:  # the app was deleted: its tasks go with it (cascade)
            return None
        self._concurrency[snap.app_id] = snap.provisioning.concurrency

        def owned(session: Session) -> Task | None:
            task = session.get(Task, task_id)
            if task is None or task.status != queue.RUNNING or task.claimed_by != claimed_by:
                return None
            return task if task.claimed_at == lease else None

        actor = Actor(ENGINE_ACTOR, correlation_id=correlation)
        result = Result()
        result.step("scope", snap.reason, policy_version=snap.policy.version or 0)
        if snap.error is not None:
            result.step("error", snap.error)
            with self.db.session() as session:
                if (task := owned(session)) is not None:
                    self._fail(session, task, snap, snap.error, dead=True)
            result.outcome = "failed"
            return result
        pending = snap.pending()
        if pending is not None and pending.kind in DEPROVISIONS and snap.held_by:
            state, run_id = snap.held_by
            # Held: deferred, not dropped (approving or cancelling makes it due). Cancelled:
            # the task was part of the change the admin cancelled.
            verdict = "deferred: held by" if state == "held" else "dropped: cancelled with"
            with self.db.session() as session:
                task = owned(session)
                if task is not None and state == "held" and not runs.still_held(session, run_id):
                    # Approved or cancelled since the snapshot (the approve or cancel did not
                    # see this task, it was running): due again now, never parked behind a
                    # hold that is over. The next run reads the outcome of the hold.
                    result.step("held", f"run {run_id} was approved or cancelled meanwhile")
                    queue.defer(session, task, at=utcnow())
                    result.outcome = "skipped"
                    return result
                result.step("held", f"{verdict} run {run_id}")
                if task is not None:
                    activity.record(
                        session, actor, EVENT_ACTION[pending.kind],
                        f"{pending.kind.value} of {snap.user_label} in {snap.app_name} {verdict} run {run_id}",
                        outcome="skipped", app_id=snap.app_id, user_id=user_id,
                        targets={"app": snap.app_name, "user": snap.user_label, "run_id": run_id},
                    )
                    if task.run_id:  # its run is done with it; the held run takes it over
                        runs.count_outcome(session, task.run_id, "skipped")
                        task.run_id = None
                    if state == "held":
                        queue.defer(session, task, at=utcnow() + HELD_RECHECK)
                    else:
                        self._close(session, task, queue.DISMISSED, "skipped")
            result.outcome = "skipped"
            return result
        if not snap.provisioning.enabled:
            result.step("skip", "provisioning is disabled")
            with self.db.session() as session:
                if (task := owned(session)) is not None:
                    if pending is not None:
                        activity.record(
                            session, actor, EVENT_ACTION[pending.kind],
                            f"{pending.kind.value} of {snap.user_label} in {snap.app_name} "
                            "skipped: provisioning is disabled",
                            outcome="skipped", app_id=snap.app_id, user_id=user_id,
                            targets={"app": snap.app_name, "user": snap.user_label},
                        )
                    self._close(session, task, queue.SUCCEEDED, "skipped")
            result.outcome = "skipped"
            return result

        connector = await self.pool.get(snap)
        try:
            await reconcile(
                connector, snap.provisioning, snap.desired, snap.actual, verify_remote=verify,
                deprovision=snap.deprovision, now=utcnow(), result=result,
            )
        except ConnectorError as exc:
            result.step("error", exc.detail, retryable=exc.retryable)
            with self.db.session() as session:
                if (task := owned(session)) is not None:
                    self._fail(
                        session, task, snap, exc.detail, dead=not exc.retryable,
                        retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
                    )
            result.outcome = "failed"
            return result

        with self.db.session() as session:
            store_account(session, snap.app_id, user_id, result, snap.fingerprint)
            if _state(snap.actual) != _state(result.account):
                # An account appeared, went or changed state: the groups pushed to the app
                # that hold (or should hold) this user are re-checked.
                pushes.accounts_changed(session, actor, snap.app_id, user_id, "app.account")
            operation = result.operation
            task = owned(session)
            attempt = task.attempts if task is not None else None
            if operation is not None:
                latency_ms = round((utcnow() - created_at).total_seconds() * 1000)
                activity.record(
                    session, actor, EVENT_ACTION[operation.kind],
                    f"{operation.kind.value} of {snap.user_label} in {snap.app_name} succeeded",
                    app_id=snap.app_id, user_id=user_id,
                    targets={
                        "app": snap.app_name, "user": snap.user_label,
                        "remote_id": result.account.remote_id if result.account else None,
                    },
                    details={
                        **operation.describe(), "attempt": attempt, "latency_ms": latency_ms,
                        "policy_version": snap.policy.version or 0, "trace": result.trace,
                    },
                )
            elif blocked := _blocked_deprovision(snap):
                activity.record(
                    session, actor, "app.user.deprovision",
                    f"deprovisioning of {snap.user_label} in {snap.app_name} skipped: {blocked}",
                    outcome="skipped", app_id=snap.app_id, user_id=user_id,
                    targets={"app": snap.app_name, "user": snap.user_label},
                )
            if task is not None:
                task.operation = operation.kind.value if operation else None
                self._close(session, task, queue.SUCCEEDED, result.outcome)
        return result

    def _close(self, session: Session, task: Task, status: str, outcome: str) -> None:
        task.status = status
        task.updated_at = utcnow()
        task.last_error = None if status == queue.SUCCEEDED else task.last_error
        if task.run_id:
            runs.count_outcome(session, task.run_id, outcome)

    def _fail(
        self,
        session: Session,
        task: Task,
        snap: Snapshot | None,
        error: str,
        *,
        dead: bool,
        retry_after: float | None = None,
    ) -> None:
        """An account task failed (or any task crashed, ``snap`` None)."""
        if task.kind == "group":  # a group task that crashed
            fail_group(self, session, task, None, error, dead=dead, retry_after=retry_after)
            return
        pending = snap.pending() if snap else None
        app_name = snap.app_name if snap else task.app_id
        user_label = snap.user_label if snap else task.user_id
        record = (
            session.query(Account).filter_by(app_id=task.app_id, user_id=task.user_id).one_or_none()
        )
        if record is not None:
            record.last_error = error
        task.operation = pending.kind.value if pending else task.operation
        self.retry_or_bury(
            session, task, error, dead=dead, retry_after=retry_after,
            action=EVENT_ACTION[pending.kind] if pending else "app.user.sync",
            doing=f"{pending.kind.value if pending else 'sync'} of {user_label}",
            subject=user_label, app_name=app_name, user_id=task.user_id,
            targets={"app": app_name, "user": user_label},
        )

    def retry_or_bury(
        self,
        session: Session,
        task: Task,
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
        """Requeue a failed task with backoff, or, terminal or out of attempts, mark it dead;
        either way the activity log says so (``doing`` in ``app_name`` failed ...)."""
        actor = Actor(ENGINE_ACTOR, correlation_id=task.correlation_id)
        if dead or task.attempts >= self.settings.task_max_attempts:
            task.status, task.last_error, task.updated_at = queue.DEAD, error, utcnow()
            activity.record(
                session, actor, action, f"{doing} in {app_name} failed: {error}",
                outcome="failure", app_id=task.app_id, user_id=user_id, targets=targets,
                details={"attempt": task.attempts, "error": error},
            )
            activity.record(
                session, actor, "task.dead",
                f"task {task.id} for {subject} in {app_name} is dead after {task.attempts} "
                f"attempt(s): {error}",
                outcome="failure", app_id=task.app_id, user_id=user_id,
                targets={"task_id": task.id, **targets}, details={"error": error, "terminal": dead},
            )
            if task.run_id:
                runs.count_outcome(session, task.run_id, "failed")
            return
        delay = queue.backoff(
            task.attempts,
            self.settings.retry_base_seconds,
            self.settings.retry_max_seconds,
            retry_after,
        )
        activity.record(
            session, actor, action,
            f"{doing} in {app_name} failed (attempt {task.attempts}), retrying in {delay:.1f} s: "
            f"{error}",
            outcome="retry", app_id=task.app_id, user_id=user_id, targets=targets,
            details={"attempt": task.attempts, "error": error, "retry_in_seconds": round(delay, 3)},
        )
        queue.requeue(session, task, at=utcnow() + timedelta(seconds=delay), error=error)


def wake_on_commit(db: Database, callback: Callable[[], None]) -> None:
    """Call ``callback`` after any commit that queued tasks (the in-process, event-driven path)."""

    @sa_event.listens_for(db.sessions, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.info.pop("tasks_enqueued", False):
            callback()

    @sa_event.listens_for(db.sessions, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop("tasks_enqueued", None)


class WorkerThread:
    """A worker with its own event loop in a daemon thread (``serve``, tests)."""

    def __init__(self, worker: Worker, listen_url: str | None = None) -> None:
        self.worker = worker
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="provisiond-worker", daemon=True)
        self._listen_url = listen_url
        self._listening = True
        self._listener: threading.Thread | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._listen_url:
            self._listener = threading.Thread(
                target=self._listen, name="provisiond-listen", daemon=True
            )
            self._listener.start()

    def _main(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await self.worker.run(self._stop)

        asyncio.run(main())

    def _listen(self) -> None:
        """PostgreSQL LISTEN: tasks queued by other processes wake this worker at once."""
        import psycopg

        assert self._listen_url is not None
        while self._listening:
            try:
                with psycopg.connect(self._listen_url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {queue.NOTIFY_CHANNEL}")
                    while self._listening:
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.worker.wake()
            except psycopg.Error:
                if self._listening:
                    log.warning("LISTEN connection lost; retrying in 1 s")
                    time.sleep(1)

    def stop(self) -> None:
        self._listening = False
        loop, stop = self.worker._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)
        if self._listener is not None:
            self._listener.join(5)


def libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)
