"""A task that waited long at its app's gate checks, before sending, that it is still this
worker's and that no newer change was queued for its key (then it sends nothing)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from provisiond.engine import liveness, queue
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
    renewed = worker._renew(claimed)
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
    assert worker._renew(claimed) is None
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
    assert worker._renew(claimed) is None
    with runtime.db.session() as session:
        row = session.get(Task, claimed.id)
        assert row is not None and row.claimed_by == "another-worker"
