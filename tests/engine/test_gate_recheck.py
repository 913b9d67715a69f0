"""A task that waited long at its app's gate checks, before sending, that it is still this
worker's and that no newer change was queued for its key (then it sends nothing); many tasks
are checked in one transaction (engine.leases)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from provisiond.engine import leases, liveness, queue
from provisiond.engine.worker import Worker
from provisiond.runtime import Runtime
from provisiond.store.tables import Task, utcnow
from tests.engine.test_queue import make_app, make_users

WORKER_TIMEOUT = timedelta(seconds=30)


def _claimed(runtime: Runtime, reason: str = "r") -> tuple[Worker, queue.Claimed, str, str]:
    """One user's task in one app, claimed by a worker: (worker, task, app id, user id)."""
    app_id = make_app(runtime)
    (user_id,) = make_users(runtime, 1)
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, [user_id], reason=reason, correlation_id="c")
    worker = Worker(runtime.db, runtime.settings, runtime.vault)
    with runtime.db.session() as session:
        (claimed,) = queue.claim(session, worker.id, 1)
    return worker, claimed, app_id, user_id


def test_a_task_still_owned_is_renewed_from_now(runtime: Runtime) -> None:
    worker, claimed, _, _ = _claimed(runtime)
    renewed = worker._renew([claimed]).get((claimed.id, claimed.claimed_at))
    assert renewed is not None and renewed.claimed_at > claimed.claimed_at
    with runtime.db.session() as session:
        row = session.get(Task, claimed.id)
        assert row is not None and row.status == queue.RUNNING
        assert row.claimed_at == renewed.claimed_at


def test_a_newer_change_for_the_key_takes_over_and_nothing_is_sent(runtime: Runtime) -> None:
    worker, claimed, app_id, user_id = _claimed(runtime, "app.assignment.create")
    with runtime.db.session() as session:  # the user leaves while the create waits at the gate
        queue.enqueue(session, app_id, [user_id], reason="user.lifecycle.deactivate",
                      correlation_id="c2")
    assert worker._renew([claimed]) == {}
    with runtime.db.session() as session:
        rows = {t.reason: t.status for t in session.scalars(select(Task))}
    assert rows == {"app.assignment.create": queue.SUPERSEDED,
                    "user.lifecycle.deactivate": queue.QUEUED}


def test_a_task_whose_lease_was_taken_over_sends_nothing(runtime: Runtime) -> None:
    worker, claimed, _, _ = _claimed(runtime)
    later = utcnow() + queue.LEASE + timedelta(seconds=1)
    with runtime.db.session() as session:  # it waited past its lease: another worker has it
        assert liveness.release_orphans(session, WORKER_TIMEOUT, now=later) == 1
    with runtime.db.session() as session:
        (other,) = queue.claim(session, "another-worker", 1, now=later)
    assert other.id == claimed.id
    assert worker._renew([claimed]) == {}
    with runtime.db.session() as session:
        row = session.get(Task, claimed.id)
        assert row is not None and row.claimed_by == "another-worker"


def test_one_check_renews_sends_nothing_for_and_leaves_alone_each_as_it_should(
    runtime: Runtime,
) -> None:
    app_id = make_app(runtime)
    kept, newer, lost = make_users(runtime, 3, prefix="batch")
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, [kept, newer, lost], reason="r", correlation_id="c")
    worker = Worker(runtime.db, runtime.settings, runtime.vault)
    with runtime.db.session() as session:
        claimed = {task.subject_id: task for task in queue.claim(session, worker.id, 3)}
    with runtime.db.session() as session:  # a newer change for one key, another worker's lease
        queue.enqueue(session, app_id, [newer], reason="user.lifecycle.deactivate",
                      correlation_id="c2")
        row = session.get(Task, claimed[lost].id)
        assert row is not None
        row.claimed_by, row.claimed_at = "another-worker", utcnow()
    renewed = worker._renew(list(claimed.values()))
    key = (claimed[kept].id, claimed[kept].claimed_at)
    assert set(renewed) == {key}
    assert renewed[key].claimed_at > claimed[kept].claimed_at
    with runtime.db.session() as session:
        rows = {(t.subject_id, t.reason): (t.status, t.claimed_by, t.claimed_at)
                for t in session.scalars(select(Task))}
    assert rows[(kept, "r")] == (queue.RUNNING, worker.id, renewed[key].claimed_at)
    assert rows[(newer, "r")][0] == queue.SUPERSEDED
    assert rows[(newer, "user.lifecycle.deactivate")][0] == queue.QUEUED
    assert rows[(lost, "r")][:2] == (queue.RUNNING, "another-worker")


def _task(n: int, claimed_at: datetime | None = None) -> queue.Claimed:
    now = utcnow()
    return queue.Claimed(
        id=f"t{n}", app_id="a", kind="user", subject_id=f"u{n}", run_id=None, reason="r",
        priority=1, attempts=1, verify_remote=False, correlation_id="c", created_at=now,
        updated_at=now, claimed_by="w", claimed_at=claimed_at or now,
    )


def test_tasks_that_ask_while_a_check_runs_share_the_next_one() -> None:
    task = _task

    async def scenario() -> None:
        release = asyncio.Event()
        seen: list[list[str]] = []

        async def check(tasks: list[queue.Claimed]) -> dict[tuple[str, datetime], queue.Claimed]:
            seen.append([t.id for t in tasks])
            await release.wait()  # t2 is no longer this worker's
            return {(t.id, t.claimed_at): t for t in tasks if t.id != "t2"}

        renewals = leases.Renewals(check)
        first = asyncio.create_task(renewals.renew(task(0)))
        while not seen:  # the first check is under way
            await asyncio.sleep(0)
        rest = [asyncio.create_task(renewals.renew(task(n))) for n in (1, 2, 3)]
        await asyncio.sleep(0)
        release.set()
        answers = [await first] + [await r for r in rest]
        assert seen == [["t0"], ["t1", "t2", "t3"]]
        assert [a.id if a else None for a in answers] == ["t0", "t1", None, "t3"]
        assert (renewals.rounds, renewals.checked) == (2, 4)

    asyncio.run(scenario())


def test_a_check_takes_the_tasks_that_waited_long_at_their_gate_with_it() -> None:
    async def scenario() -> None:
        seen: list[list[str]] = []
        later = utcnow()

        async def check(tasks: list[queue.Claimed]) -> dict[tuple[str, datetime], queue.Claimed]:
            seen.append(sorted(t.id for t in tasks))
            return {(t.id, t.claimed_at): replace(t, claimed_at=later)
                    for t in tasks if t.id != "t2"}

        renewals = leases.Renewals(check)
        old = utcnow() - leases.RECHECK_AFTER * 2
        asker, long_wait, lost, just_came = _task(0, old), _task(1, old), _task(2, old), _task(3)
        for task in (long_wait, lost, just_came):
            renewals.waiting(task)
        renewed = await renewals.renew(asker)
        assert renewed is not None and renewed.claimed_at == later
        assert seen == [["t0", "t1", "t2"]]  # not the task that has only begun to wait
        # Their turns come: the one renewed sends at once, with its renewed lease; the one
        # taken over meanwhile sends nothing; the newcomer is as it was.
        taken = await renewals.latest(long_wait)
        assert taken is not None and taken.claimed_at == later
        assert await renewals.latest(lost) is None
        assert await renewals.latest(just_came) == just_came
        for task in (long_wait, lost, just_came):
            renewals.forget(task)
        assert (renewals.rounds, renewals.checked) == (1, 3)

    asyncio.run(scenario())


def test_a_task_whose_turn_comes_while_a_check_holds_it_takes_that_check() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        later = utcnow()

        async def check(tasks: list[queue.Claimed]) -> dict[tuple[str, datetime], queue.Claimed]:
            await release.wait()
            return {(t.id, t.claimed_at): replace(t, claimed_at=later) for t in tasks}

        renewals = leases.Renewals(check)
        old = utcnow() - leases.RECHECK_AFTER * 2
        asker, waiter = _task(0, old), _task(1, old)
        renewals.waiting(waiter)
        first = asyncio.create_task(renewals.renew(asker))
        while renewals.rounds == 0:
            await asyncio.sleep(0)
        # The waiter's slot comes now: it must not ask with its old lease (the check in
        # flight is renewing it), but take that check's answer.
        turn = asyncio.create_task(renewals.latest(waiter))
        await asyncio.sleep(0)
        assert not turn.done()
        release.set()
        got = await turn
        assert got is not None and got.claimed_at == later
        assert (await first) is not None
        assert renewals.rounds == 1

    asyncio.run(scenario())


def test_a_check_that_fails_fails_each_task_that_asked_and_leaves_the_others_as_they_were(
) -> None:
    async def scenario() -> None:
        async def check(tasks: list[queue.Claimed]) -> dict[tuple[str, datetime], queue.Claimed]:
            raise RuntimeError("the database is away")

        renewals = leases.Renewals(check)
        old = utcnow() - leases.RECHECK_AFTER * 2
        waiter = _task(1, old)
        renewals.waiting(waiter)
        with pytest.raises(RuntimeError):
            await renewals.renew(_task(0, old))
        assert renewals.checked == 2
        assert await renewals.latest(waiter) == waiter  # it checks itself when its turn comes

    asyncio.run(scenario())


def test_a_task_held_twice_is_renewed_only_under_its_newest_lease(runtime: Runtime) -> None:
    worker, claimed, _, _ = _claimed(runtime)
    later = utcnow() + queue.LEASE + timedelta(seconds=1)
    with runtime.db.session() as session:  # its lease ran out, and this worker took it again
        assert liveness.release_orphans(session, WORKER_TIMEOUT, now=later) == 1
    with runtime.db.session() as session:
        (again,) = queue.claim(session, worker.id, 1, now=later)
    renewed = worker._renew([claimed, again])
    assert set(renewed) == {(again.id, again.claimed_at)}


def test_a_lease_check_the_database_does_not_answer_retries_the_task(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One failed check answers every task that asked in it: each is retried with backoff,
    none is buried as dead (and nothing is sent)."""
    from sqlalchemy.exc import OperationalError

    from provisiond.engine.context import read_context
    from tests.engine.test_writer import snapshots

    worker, claimed, app_id, _ = _claimed(runtime)
    waited = replace(claimed, claimed_at=claimed.claimed_at - leases.RECHECK_AFTER * 2)

    def away(tasks: list[queue.Claimed]) -> dict[tuple[str, datetime], queue.Claimed]:
        raise OperationalError("SELECT", {}, Exception("the database is away"))

    monkeypatch.setattr(worker, "_renew", away)
    with runtime.db.session() as session:
        ctx = read_context(session, runtime.vault, app_id)
    assert ctx is not None
    snap = snapshots(runtime, app_id, [claimed])[claimed.id]

    async def scenario() -> object:
        worker._loop = asyncio.get_running_loop()
        try:
            return await worker.reconcile_one(ctx, waited, snap)
        finally:
            if worker._database is not None:
                worker._database.shutdown(wait=True)

    outcome = asyncio.run(scenario())
    assert outcome is not None
    write = outcome.write  # type: ignore[attr-defined]
    assert write.transition.name == "RETRY", write
    assert "database did not answer" in (write.error or "")
