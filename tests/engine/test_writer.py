"""Writing outcomes (engine.writer, Worker._write) on SQLite and PostgreSQL.

A batch that cannot be written loses no task and closes none twice; a task whose lease ran out
mid-batch keeps what happened to the account but not its transition; a deprovisioning is
written at once, not behind the slow creates of its batch (a real scim2-server over HTTP whose
account creations are held back).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Lifecycle
from provisiond.engine import liveness, queue, writer
from provisiond.engine import worker as worker_module
from provisiond.engine.context import read_context
from provisiond.engine.decide import Snapshot, snapshot
from provisiond.engine.executor import Result
from provisiond.engine.outcomes import (
    Outcome,
    TaskWrite,
    Transition,
    account_failure,
    applied,
)
from provisiond.engine.planner import AccountStatus, ActualAccount, OperationKind
from provisiond.engine.reader import read_inputs
from provisiond.engine.worker import Worker
from provisiond.runtime import Runtime
from provisiond.services import apps, assignments, directory, runs
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account, Event, Run, Task, utcnow
from tests.engine.test_queue import make_users
from tests.support.patience import PATIENCE
from tests.support.servers import serve_app

WORKER_TIMEOUT = timedelta(seconds=30)

TOKEN = "target-token"
T = TypeVar("T")

# -- helpers ----------------------------------------------------------------------------------


def make_app(
    rt: Runtime, base_url: str = "http://127.0.0.1:9/v2", *, concurrency: int = 4,
    timeout: float = 10.0,
) -> str:
    with rt.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, rt.vault, name="writer-app", label="Writer",
            connector=ScimConnectorSettings(
                base_url=base_url, auth={"type": "bearer", "token": TOKEN},
                timeout_seconds=timeout, request_deadline_seconds=timeout,
            ),
            provisioning=ProvisioningSettings(),
        )
        apps.set_provisioning(
            session, SYSTEM, app, ProvisioningSettings(enabled=True, concurrency=concurrency)
        )
        return app.id


def assign(session: Session, app_id: str, user_ids: Sequence[str]) -> None:
    for user_id in user_ids:
        assignments.create_assignment(
            session, SYSTEM, app_id, principal_type="user", principal_id=user_id
        )


def synced_users(rt: Runtime, app_id: str, count: int) -> tuple[list[str], str]:
    """``count`` assigned users, queued by a full sync: (user ids, run id)."""
    users = make_users(rt, count, prefix="w")
    with rt.db.session() as session:
        assign(session, app_id, users)
        run = runs.start_full_sync(session, SYSTEM, apps.get_app(session, app_id))
        assert run.total == count
        return users, run.id


def claim_all(rt: Runtime, worker_id: str) -> list[queue.Claimed]:
    with rt.db.session() as session:
        return queue.claim(session, worker_id, 100)


def claimed_again(rt: Runtime, task: queue.Claimed, owner: str) -> queue.Claimed:
    """``task``'s lease runs out: released as an orphan, and claimed again by ``owner``."""
    with rt.db.session() as session:
        row = session.get(Task, task.id)
        assert row is not None
        row.claimed_at = utcnow() - queue.LEASE - queue.LEASE
    with rt.db.session() as session:
        assert liveness.release_orphans(session, WORKER_TIMEOUT) == 1
    with rt.db.session() as session:
        (again,) = queue.claim(session, owner, 10)
    assert again.id == task.id and again.claimed_at != task.claimed_at
    return again


def snapshots(rt: Runtime, app_id: str, tasks: Sequence[queue.Claimed]) -> dict[str, Snapshot]:
    now = utcnow()
    with rt.db.session() as session:
        ctx = read_context(session, rt.vault, app_id)
        assert ctx is not None
        inputs = read_inputs(session, ctx, [t.subject_id for t in tasks])
    return {
        t.id: snapshot(ctx, inputs[t.subject_id], None, queued_at=t.updated_at, now=now)
        for t in tasks
    }


def created(task: queue.Claimed, snap: Snapshot, **attributes: Any) -> Outcome:
    """The outcome of the create the snapshot plans, as if the app had accepted it."""
    operation = snap.pending
    assert operation is not None and operation.kind is OperationKind.CREATE
    account = ActualAccount(
        f"remote-{task.subject_id}", {**operation.attributes, **attributes}, AccountStatus.ACTIVE
    )
    result = Result(outcome="created", operation=operation, account=account)
    return applied(task, snap, result, utcnow())


def task_rows(rt: Runtime) -> dict[str, Task]:
    with rt.db.session() as session:
        return {task.id: task for task in session.scalars(select(Task).where(Task.kind == "user"))}


def accounts_of(rt: Runtime, app_id: str) -> dict[str, Account]:
    with rt.db.session() as session:
        rows = session.scalars(select(Account).where(Account.app_id == app_id))
        return {account.user_id: account for account in rows}


def engine_events(rt: Runtime, action: str) -> Counter[str | None]:
    """user id -> how many engine events of ``action`` name them."""
    with rt.db.session() as session:
        rows = session.scalars(
            select(Event).where(Event.actor == "provisiond", Event.action == action)
        )
        return Counter(row.user_id for row in rows)


def run_of(rt: Runtime, run_id: str) -> Run:
    with rt.db.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


# -- a batch that cannot be written -----------------------------------------------------------


def test_one_unwritable_outcome_costs_only_its_own_task(runtime: Runtime) -> None:
    """The batch transaction fails on one row; every other outcome is written, once."""
    app_id = make_app(runtime)
    users, run_id = synced_users(runtime, app_id, 5)
    claimed = claim_all(runtime, "w1")
    snaps = snapshots(runtime, app_id, claimed)
    poisoned = claimed[2]
    batch = [
        # No JSON serialiser takes an object(): the account upsert of the batch fails.
        created(t, snaps[t.id], **({"x-unserialisable": object()} if t is poisoned else {}))
        for t in claimed
    ]
    worker = Worker(runtime.db, runtime.settings, runtime.vault)
    owned = worker._write(batch)

    assert owned == {t.id for t in claimed}
    rows = task_rows(runtime)
    for task in claimed:
        expected = queue.DEAD if task is poisoned else queue.SUCCEEDED
        assert rows[task.id].status == expected, task.subject_id
    # Dead with the reason, never retried in silence: an admin sees it and can retry it.
    assert "could not be recorded" in (rows[poisoned.id].last_error or "")
    assert engine_events(runtime, "task.dead") == Counter({poisoned.subject_id: 1})
    written = accounts_of(runtime, app_id)
    assert set(written) == set(users) - {poisoned.subject_id}
    provisioned = engine_events(runtime, "app.user.provision")
    assert provisioned == Counter({u: 1 for u in users if u != poisoned.subject_id})
    run = run_of(runtime, run_id)
    assert run.counts["created"] == 4 and run.counts["failed"] == 1
    assert sum(run.counts.values()) == 5 and run.status == "failed"


def test_a_batch_rolled_back_after_writing_everything_closes_each_task_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's transaction fails at its very end (every row written, the commit lost):
    written again one by one, each task closes once and its run counts it once."""
    app_id = make_app(runtime)
    _, run_id = synced_users(runtime, app_id, 6)
    claimed = claim_all(runtime, "w1")
    snaps = snapshots(runtime, app_id, claimed)
    retried, buried = claimed[0], claimed[1]
    policy = Worker(runtime.db, runtime.settings, runtime.vault).retry_policy
    batch = [created(t, snaps[t.id]) for t in claimed[2:]] + [
        account_failure(retried, snaps[retried.id], "HTTP 503", dead=False, retry_after=None,
                        policy=policy, now=utcnow()),
        account_failure(buried, snaps[buried.id], "HTTP 400: bad", dead=True, retry_after=None,
                        policy=policy, now=utcnow()),
    ]
    real = writer.write_outcomes
    attempts: list[int] = []

    def fails_when_batched(session: Session, outcomes: Sequence[Outcome], now: datetime) -> set[str]:
        attempts.append(len(outcomes))
        owned = real(session, outcomes, now)
        session.flush()  # everything reached the database
        if len(outcomes) > 1:
            raise RuntimeError("injected: the connection dropped before the commit")
        return owned

    monkeypatch.setattr(worker_module, "write_outcomes", fails_when_batched)
    worker = Worker(runtime.db, runtime.settings, runtime.vault)
    owned = worker._write(batch)

    assert attempts == [6, 1, 1, 1, 1, 1, 1]
    assert owned == {t.id for t in claimed}
    rows = task_rows(runtime)
    assert [rows[t.id].status for t in claimed[2:]] == [queue.SUCCEEDED] * 4
    assert rows[retried.id].status == queue.QUEUED and rows[retried.id].attempts == 1
    assert rows[buried.id].status == queue.DEAD and rows[buried.id].last_error == "HTTP 400: bad"
    # One event each: four creates, the retry's notice, the failure's (then task.dead).
    assert engine_events(runtime, "app.user.provision") == Counter(t.subject_id for t in claimed)
    assert engine_events(runtime, "task.dead") == Counter({buried.subject_id: 1})
    run = run_of(runtime, run_id)
    assert run.counts["created"] == 4 and run.counts["failed"] == 1
    assert sum(run.counts.values()) == 5  # the retried task has no outcome yet
    assert set(accounts_of(runtime, app_id)) == {t.subject_id for t in claimed[2:]}


# -- a lease that runs out mid-batch ----------------------------------------------------------


@pytest.mark.parametrize("stale", ["created", "retry", "dead"])
@pytest.mark.parametrize("new_owner", ["w2", "w1"], ids=["another-worker", "the-same-worker"])
def test_a_task_taken_over_mid_batch_keeps_its_account_but_not_its_transition(
    runtime: Runtime, new_owner: str, stale: str
) -> None:
    app_id = make_app(runtime)
    users, run_id = synced_users(runtime, app_id, 4)
    claimed = claim_all(runtime, "w1")
    snaps = snapshots(runtime, app_id, claimed)
    taken = claimed[1]
    policy = Worker(runtime.db, runtime.settings, runtime.vault).retry_policy
    batch = [
        created(t, snaps[t.id]) if t is not taken or stale == "created"
        else account_failure(t, snaps[t.id], "HTTP 503", dead=stale == "dead",
                             retry_after=None, policy=policy, now=utcnow())
        for t in claimed
    ]
    # Its lease runs out before the batch is written: released, and claimed again.
    again = claimed_again(runtime, taken, new_owner)

    with runtime.db.session() as session:
        owned = writer.write_outcomes(session, batch, utcnow())

    assert owned == {t.id for t in claimed} - {taken.id}
    rows = task_rows(runtime)
    # Not closed, requeued nor buried: left running under its new owner's lease.
    assert rows[taken.id].status == queue.RUNNING
    assert (rows[taken.id].claimed_by, rows[taken.id].claimed_at) == (
        again.claimed_by, again.claimed_at
    )
    assert rows[taken.id].attempts == again.attempts and rows[taken.id].run_id == run_id
    assert all(rows[t.id].status == queue.SUCCEEDED for t in claimed if t is not taken)
    accounts = accounts_of(runtime, app_id)
    provisioned = engine_events(runtime, "app.user.provision")
    if stale == "created":
        # What was sent happened: the account is recorded and the activity log says so.
        account = accounts[taken.subject_id]
        assert account.remote_id == f"remote-{taken.subject_id}" and account.status == "active"
        assert provisioned == Counter({u: 1 for u in users})
    else:
        # A failure is the stale owner's to report only while the task is still its own.
        assert taken.subject_id not in accounts
        assert provisioned == Counter({u: 1 for u in users if u != taken.subject_id})
        assert engine_events(runtime, "task.dead") == Counter()
    assert run_of(runtime, run_id).counts["created"] == 3

    # The new owner finishes the key; its run counts it once, and is done.
    (snap,) = snapshots(runtime, app_id, [again]).values()
    if stale == "created":
        assert snap.pending is None and snap.record is not None  # nothing left to send
        outcome = applied(again, snap, Result(account=snap.record.actual()), utcnow())
    else:
        outcome = created(again, snap)
    with runtime.db.session() as session:
        assert writer.write_outcomes(session, [outcome], utcnow()) == {again.id}
    run = run_of(runtime, run_id)
    assert sum(run.counts.values()) == 4 and run.status == "succeeded"
    assert task_rows(runtime)[taken.id].status == queue.SUCCEEDED


@pytest.mark.parametrize("order", ["stale-first", "stale-last"])
def test_both_copies_of_a_task_claimed_again_in_one_batch_write_only_the_newer(
    runtime: Runtime, order: str
) -> None:
    """The same worker holds a task twice (its lease ran out while it waited, and it claimed
    it again): when both outcomes meet in one write, only the newer lease's is written."""
    app_id = make_app(runtime)
    synced_users(runtime, app_id, 1)
    (old,) = claim_all(runtime, "w1")
    again = claimed_again(runtime, old, "w1")
    policy = Worker(runtime.db, runtime.settings, runtime.vault).retry_policy
    snap = snapshots(runtime, app_id, [again])[again.id]
    stale = account_failure(old, snap, "HTTP 400: bad", dead=True, retry_after=None,
                            policy=policy, now=utcnow())
    fresh = created(again, snap)
    batch = [stale, fresh] if order == "stale-first" else [fresh, stale]
    with runtime.db.session() as session:
        assert writer.write_outcomes(session, batch, utcnow()) == {again.id}
    row_now = task_rows(runtime)[again.id]
    assert row_now.status == queue.SUCCEEDED and row_now.last_error is None
    assert engine_events(runtime, "task.dead") == Counter()


# -- a deprovisioning does not wait for its batch ---------------------------------------------


class HeldCreates:
    """The stock scim2-server whose account creations (POST /Users) wait until released.

    Everything else (discovery, lookups, PATCH, PUT) is answered at once. A held creation is
    let through after ``limit`` seconds whatever happens, so that a failing test ends."""

    def __init__(self, token: str, limit: float = 45.0) -> None:
        from provisiond.demo.target import build

        self.inner = build([token])
        self.limit = limit
        self.released = threading.Event()
        self.released.set()
        self._lock = threading.Lock()
        self.held = 0  # creations waiting right now

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        creation = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/").endswith("/Users")
        )
        if creation and not self.released.is_set():
            with self._lock:
                self.held += 1
            try:
                deadline = time.monotonic() + self.limit
                while not self.released.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
            finally:
                with self._lock:
                    self.held -= 1
        await self.inner(scope, receive, send)


@pytest.fixture
def held_creates() -> Iterator[tuple[HeldCreates, str]]:
    target = HeldCreates(TOKEN)
    try:
        with serve_app(target) as url:
            yield target, url + "/v2"
    finally:
        target.released.set()


async def eventually(check: Callable[[], T], timeout: float = 60.0) -> T:
    """Poll ``check`` (run off the event loop) until it returns something truthy."""
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(0.02)


def test_a_deprovisioning_is_written_without_waiting_for_the_slow_creates_of_its_batch(
    runtime: Runtime, held_creates: tuple[HeldCreates, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, base = held_creates
    # Room for every task of the batch, and a creation held back never times out: in this
    # test it is slow, not failing.
    app_id = make_app(runtime, base, concurrency=8, timeout=60.0)
    (leaver,) = make_users(runtime, 1, prefix="leaver")
    with runtime.db.session() as session:
        assign(session, app_id, [leaver])
    asyncio.run(Worker(runtime.db, runtime.settings, runtime.vault).drain())
    assert accounts_of(runtime, app_id)[leaver].status == "active"

    target.released.clear()  # from now on, account creations are slow
    joiners = make_users(runtime, 4, prefix="joiner")
    with runtime.db.session() as session:  # one change: four joiners and a leaver
        assign(session, app_id, joiners)
        directory.change_lifecycle(session, SYSTEM, leaver, Lifecycle.SUSPEND)
    queued = {t.subject_id: t for t in task_rows(runtime).values() if t.status == queue.QUEUED}
    assert set(queued) == {leaver, *joiners}
    # No periodic flush while the batch is in flight: only the deprovisioning's own flush can
    # write it before the creates are done.
    monkeypatch.setattr(worker_module, "FLUSH_SECONDS", 60.0)

    def creates_when_deactivated() -> dict[str, Task] | None:
        with runtime.db.session() as session:
            account = session.scalar(
                select(Account).where(Account.app_id == app_id, Account.user_id == leaver)
            )
            if account is None or account.status != "deactivated":
                return None
            ids = [queued[j].id for j in joiners]
            return {t.subject_id: t for t in session.scalars(select(Task).where(Task.id.in_(ids)))}

    async def scenario() -> None:
        worker = Worker(runtime.db, runtime.settings, runtime.vault)
        stop = asyncio.Event()
        runner = asyncio.create_task(worker.run(stop))
        try:
            creates = await eventually(creates_when_deactivated)
            # The leaver is written while the creates of the same batch are still in flight.
            assert {t.status for t in creates.values()} == {queue.RUNNING}
            assert {t.claimed_by for t in creates.values()} == {worker.id}
            assert {t.claimed_at for t in creates.values()} == {
                task_rows(runtime)[queued[leaver].id].claimed_at  # claimed in one batch
            }
            assert not set(joiners) & set(accounts_of(runtime, app_id))
            assert task_rows(runtime)[queued[leaver].id].status == queue.SUCCEEDED
            await eventually(lambda: target.held == len(joiners))  # all four at the app
            assert {t.status for t in task_rows(runtime).values() if t.subject_id in joiners} == {
                queue.RUNNING
            }
            monkeypatch.setattr(worker_module, "FLUSH_MAX", 1)  # each outcome flushes now
            target.released.set()
            await eventually(lambda: all(
                t.status == queue.SUCCEEDED for t in task_rows(runtime).values()
            ))
        finally:  # however it ended, the worker writes what it holds and stops
            monkeypatch.setattr(worker_module, "FLUSH_MAX", 1)
            target.released.set()
            stop.set()
            await runner

    asyncio.run(scenario())
    accounts = accounts_of(runtime, app_id)
    assert {j: accounts[j].status for j in joiners} == {j: "active" for j in joiners}
    assert accounts[leaver].status == "deactivated"



def test_successors_are_found_per_key_in_one_look_across_apps(runtime: Runtime) -> None:
    """A leaver's batch spans many apps: a task queued for one of its keys meanwhile is seen,
    and a queued task of the same user in another app of the batch, not a key of it, is not."""
    with runtime.db.session() as session:
        a, b = (
            apps.create_app(
                session, SYSTEM, runtime.vault, name=f"succ-{n}", label=n,
                connector=ScimConnectorSettings(
                    base_url="http://127.0.0.1:9/v2", auth={"type": "none"}
                ),
                provisioning=ProvisioningSettings(),
            ).id
            for n in ("a", "b")
        )
    x, y = make_users(runtime, 2, prefix="succ")

    def ran(*keys: tuple[str, str]) -> list[Outcome]:
        now = utcnow()
        return [
            Outcome(
                queue.Claimed(
                    id=f"t{n}", app_id=app_id, kind="user", subject_id=subject, run_id=None,
                    reason="r", priority=0, attempts=1, verify_remote=False,
                    correlation_id="c", created_at=now, updated_at=now, claimed_by="w",
                    claimed_at=now,
                ),
                TaskWrite(Transition.CLOSE, "unchanged"),
            )
            for n, (app_id, subject) in enumerate(keys)
        ]

    with runtime.db.session() as session:
        queue.enqueue(session, b, [x], reason="r", correlation_id="c")
        assert not writer.successors_queued(session, ran((a, x), (b, y)))
        assert writer.successors_queued(session, ran((a, y), (b, x)))
