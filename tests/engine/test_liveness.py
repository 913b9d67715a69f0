"""Worker liveness on SQLite and PostgreSQL: who holds a task is alive while it beats."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from provisiond.engine import liveness, queue
from provisiond.runtime import Runtime
from provisiond.store.tables import Event, Task, WorkerProcess, utcnow
from tests.engine.test_queue import make_app, make_users

TIMEOUT = timedelta(seconds=30)


def claim_as(rt: Runtime, worker_id: str, app_id: str, user_id: str) -> str:
    with rt.db.session() as session:
        queue.enqueue(session, app_id, [user_id], reason="r", correlation_id="c")
    with rt.db.session() as session:
        (task,) = queue.claim(session, worker_id, 1)
        return task.id


def status(rt: Runtime, task_id: str) -> tuple[str, str | None, bool]:
    with rt.db.session() as session:
        task = session.get(Task, task_id)
        assert task is not None
        return task.status, task.claimed_by, task.verify_remote


def test_a_silent_workers_tasks_go_back_and_a_beating_ones_stay(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    alive_user, dead_user = make_users(runtime, 2)
    now = utcnow()
    with runtime.db.session() as session:
        liveness.register(session, "alive", now=now - timedelta(minutes=10))
        liveness.register(session, "dead", now=now - timedelta(minutes=10))
    kept = claim_as(runtime, "alive", app_id, alive_user)
    lost = claim_as(runtime, "dead", app_id, dead_user)
    with runtime.db.session() as session:
        # A task held ten minutes by a worker that beats is its worker's still.
        liveness.beat(session, "alive", 1, draining=False, now=now)
        liveness.beat(session, "dead", 1, draining=False, now=now - TIMEOUT - timedelta(seconds=1))
    with runtime.db.session() as session:
        assert liveness.release_orphans(session, TIMEOUT, now=now) == 1
    assert status(runtime, kept)[0] == queue.RUNNING
    assert status(runtime, lost) == (queue.QUEUED, None, True)
    with runtime.db.session() as session:
        (event,) = session.scalars(select(Event).where(Event.action == "app.task.requeue"))
        assert (event.user_id, event.outcome) == (dead_user, "retry")
        assert "dead" in event.message
        states = {w.id: w.state for w in liveness.workers(session, TIMEOUT, now=now)}
    assert states == {"alive": "running", "dead": "lost"}


def test_a_claim_without_a_worker_row_keeps_its_lease(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    (user_id,) = make_users(runtime, 1)
    task_id = claim_as(runtime, "on-demand", app_id, user_id)
    with runtime.db.session() as session:
        assert liveness.release_orphans(session, TIMEOUT, now=utcnow() + TIMEOUT * 2) == 0
    with runtime.db.session() as session:
        later = utcnow() + queue.LEASE + timedelta(seconds=1)
        assert liveness.release_orphans(session, TIMEOUT, now=later) == 1
    assert status(runtime, task_id)[0] == queue.QUEUED


def test_retiring_gives_back_what_is_held_and_forgets_the_worker(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    (user_id,) = make_users(runtime, 1)
    with runtime.db.session() as session:
        liveness.register(session, "w1")
    task_id = claim_as(runtime, "w1", app_id, user_id)
    with runtime.db.session() as session:
        assert liveness.retire(session, "w1") == 1
    assert status(runtime, task_id) == (queue.QUEUED, None, True)
    with runtime.db.session() as session:
        assert list(session.scalars(select(WorkerProcess))) == []


def test_a_beat_after_being_forgotten_registers_again(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        liveness.register(session, "w1", now=utcnow() - liveness.FORGET_AFTER * 2)
    with runtime.db.session() as session:
        liveness.release_orphans(session, TIMEOUT)  # long gone: forgotten
    with runtime.db.session() as session:
        assert session.get(WorkerProcess, "w1") is None
        liveness.beat(session, "w1", 3, draining=True)
    with runtime.db.session() as session:
        (state,) = liveness.workers(session, TIMEOUT)
    assert (state.id, state.in_flight, state.state) == ("w1", 3, "draining")
