"""The durable queue on SQLite and PostgreSQL: coalescing, claiming, leases, the outbox."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Lifecycle, Profile
from provisiond.engine import liveness, queue
from provisiond.engine.worker import Worker
from provisiond.errors import Conflict
from provisiond.runtime import Runtime
from provisiond.services import apps, assignments, directory
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Task, utcnow
from tests.support.servers import scim_target

WORKER_TIMEOUT = timedelta(seconds=30)


def make_app(rt: Runtime, base_url: str = "http://127.0.0.1:9/v2") -> str:
    with rt.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, rt.vault, name="queue-app", label="Queue",
            connector=ScimConnectorSettings(base_url=base_url, auth={"type": "bearer", "token": "target-token"}),
            provisioning=ProvisioningSettings(),
        )
        apps.set_provisioning(session, SYSTEM, app, ProvisioningSettings(enabled=True))
        return app.id


def make_users(rt: Runtime, count: int, prefix: str = "u") -> list[str]:
    with rt.db.session() as session:
        return [
            directory.create_user(
                session, SYSTEM,
                Profile(login=f"{prefix}{i}", email=f"{prefix}{i}@example.org", firstName="U", lastName=str(i)),
                activate=True,
            ).id
            for i in range(count)
        ]


def tasks_of(rt: Runtime, status: str | None = None) -> list[Task]:
    with rt.db.session() as session:
        statement = select(Task)
        if status:
            statement = statement.where(Task.status == status)
        return list(session.scalars(statement))


def test_a_key_is_queued_once_however_often_it_changes(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    (user_id,) = make_users(runtime, 1)
    for reason in ("a", "b", "c"):
        with runtime.db.session() as session:
            queue.enqueue(session, app_id, [user_id], reason=reason, correlation_id="c")
    queued = tasks_of(runtime, queue.QUEUED)
    assert len(queued) == 1
    assert queued[0].reason == "c"


def test_a_running_key_is_not_claimed_twice(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    (user_id,) = make_users(runtime, 1)
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, [user_id], reason="first", correlation_id="c")
    with runtime.db.session() as session:
        assert len(queue.claim(session, "w1", 10)) == 1
    with runtime.db.session() as session:  # a new change while the first runs
        queue.enqueue(session, app_id, [user_id], reason="second", correlation_id="c")
    with runtime.db.session() as session:
        assert queue.claim(session, "w2", 10) == []  # waits for the running one: order kept


def test_a_rolled_back_change_leaves_no_task(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    (user_id,) = make_users(runtime, 1)
    with runtime.db.session() as session:
        assignments.create_assignment(session, SYSTEM, app_id, principal_type="user",
                                      principal_id=user_id, role=None, priority=None)
    before = len(tasks_of(runtime))

    def suspend_twice() -> None:
        with runtime.db.session() as session:
            directory.change_lifecycle(session, SYSTEM, user_id, Lifecycle.SUSPEND)  # queues a task
            directory.change_lifecycle(session, SYSTEM, user_id, Lifecycle.SUSPEND)  # then fails

    with pytest.raises(Conflict):
        suspend_twice()
    assert len(tasks_of(runtime)) == before
    with runtime.db.session() as session:
        assert directory.get_user(session, user_id).status == "active"


def test_an_expired_lease_is_queued_again(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    (user_id,) = make_users(runtime, 1)
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, [user_id], reason="r", correlation_id="c")
    with runtime.db.session() as session:
        queue.claim(session, "dead-worker", 1)
    with runtime.db.session() as session:
        assert liveness.release_orphans(
            session, WORKER_TIMEOUT, now=utcnow() + queue.LEASE + timedelta(seconds=1)
        ) == 1
    (task,) = tasks_of(runtime)
    assert task.status == queue.QUEUED
    assert task.last_error == "the claim by dead-worker outlived its lease"


def test_backoff_grows_is_jittered_and_honours_retry_after() -> None:
    delays = [queue.backoff(attempt, 1.0, 60.0) for attempt in range(1, 8) for _ in range(20)]
    assert all(0.5 <= d <= 60.0 for d in delays)
    assert len(set(delays)) > 100  # jitter
    assert min(queue.backoff(1, 1.0, 60.0, retry_after=30) for _ in range(20)) >= 30
    assert queue.backoff(1, 1.0, 60.0, retry_after=3600) == 60.0  # capped


def test_concurrent_claims_never_share_a_task(runtime: Runtime) -> None:
    """Several workers (threads with their own connections) claim disjoint sets (SKIP LOCKED)."""
    app_id = make_app(runtime)
    users = make_users(runtime, 60)
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, users, reason="bulk", correlation_id="c")
    claimed: list[list[str]] = [[] for _ in range(4)]

    def claimer(index: int) -> None:
        while True:
            with runtime.db.session() as session:
                batch = queue.claim(session, f"w{index}", 5)
                if not batch:
                    return
                claimed[index].extend(task.id for task in batch)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [task_id for batch in claimed for task_id in batch]
    assert len(every) == 60
    assert len(set(every)) == 60


def test_two_workers_share_the_work_each_task_once(runtime: Runtime) -> None:
    """Two workers on one database (the scale-out shape) provision everyone exactly once."""
    with scim_target() as base:
        app_id = make_app(runtime, base)
        users = make_users(runtime, 40, prefix="pair")
        with runtime.db.session() as session:
            # On PostgreSQL the two workers make a cluster, and an app's concurrency holds
            # across it: one worker (capacity 8: at most 4 of an app at once) leaves the
            # other room only when the app may run more than it takes.
            app = apps.get_app(session, app_id)
            apps.set_provisioning(session, SYSTEM, app,
                                  ProvisioningSettings(enabled=True, concurrency=8))
            for user_id in users:
                assignments.create_assignment(session, SYSTEM, app_id, principal_type="user",
                                              principal_id=user_id, role=None, priority=None)
        workers = [Worker(runtime.db, runtime.settings, runtime.vault, capacity=8) for _ in range(2)]

        async def both() -> None:
            await asyncio.gather(*(worker.drain(timeout=60) for worker in workers))

        asyncio.run(both())
        done = tasks_of(runtime, queue.SUCCEEDED)
        assert len(done) == 40
        assert {task.claimed_by for task in done} == {w.id for w in workers} or runtime.db.url.startswith("sqlite")
        import httpx

        listing = httpx.get(f"{base}/Users", params={"count": 100},
                            headers={"Authorization": "Bearer target-token"}).json()
        assert listing["totalResults"] == 40


def test_lifecycle_changes_are_claimed_before_bulk_runs(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    users = make_users(runtime, 5, prefix="prio")
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, users[:4], reason="app.sync", correlation_id="c", run_id="run-1")
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, [users[4]], reason="user.lifecycle.deactivate", correlation_id="c")
    with runtime.db.session() as session:
        first = queue.claim(session, "w", 1)
    assert [task.subject_id for task in first] == [users[4]]


def test_apps_without_room_are_skipped(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    users = make_users(runtime, 2, prefix="room")
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, users, reason="r", correlation_id="c")
    with runtime.db.session() as session:
        assert queue.claim(session, "w", 10, skip_apps=[app_id]) == []
    with runtime.db.session() as session:
        assert len(queue.claim(session, "w", 10)) == 2


def test_accounts_past_their_grace_period_are_swept_into_the_queue(runtime: Runtime) -> None:
    from provisiond.domain.policy import Deprovisioning, PolicyDocument
    from provisiond.engine.sweep import sweep_expired
    from provisiond.services import policies
    from provisiond.store.tables import Account

    app_id = make_app(runtime)
    users = make_users(runtime, 2, prefix="sweep")
    with runtime.db.session() as session:
        app = apps.get_app(session, app_id)
        policies.save(session, SYSTEM, app, PolicyDocument(deprovisioning=Deprovisioning(delete_after_days=30)))
        for user_id, days in zip(users, (31, 5), strict=True):
            session.add(Account(app_id=app_id, user_id=user_id, remote_id=f"r-{user_id}", status="deactivated",
                                applied={}, deactivated_at=utcnow() - timedelta(days=days)))
    with runtime.db.session() as session:
        assert sweep_expired(session) == 1
    (task,) = tasks_of(runtime, queue.QUEUED)
    assert task.subject_id == users[0]
    assert task.reason == "policy.delete_after"


def test_a_claim_or_a_retry_keeps_the_time_the_change_was_queued(runtime: Runtime) -> None:
    """A held run's cancel drops the reconciles queued before the hold by that time: a claim
    after the hold (then deferred by the worker) must not make one look newer, or cancelling
    would deprovision the very people the admin meant to keep."""
    app_id = make_app(runtime)
    (user_id,) = make_users(runtime, 1)
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, [user_id], reason="r", correlation_id="c")
    (queued,) = tasks_of(runtime)
    with runtime.db.session() as session:
        (claimed,) = queue.claim(session, "w", 1, now=utcnow() + timedelta(seconds=5))
        queue.defer(session, claimed, at=utcnow() + timedelta(minutes=10))
    assert tasks_of(runtime)[0].updated_at == queued.updated_at
    with runtime.db.session() as session:
        (claimed,) = queue.claim(session, "w", 1, now=utcnow() + timedelta(minutes=11))
        queue.requeue(session, claimed, at=utcnow(), error="503")
    (task,) = tasks_of(runtime)
    assert task.status == queue.QUEUED and task.updated_at == queued.updated_at
