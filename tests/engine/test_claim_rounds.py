"""A freed slot wakes a claim round only when a claim could find something (issue 9).

A claim that took every due task it could have had, whatever its room, says so; until the
next claim, the slots its tasks free wake no round (each was a claim and a ``next_due`` that
found nothing, one per task at the end of every backlog). New work still wakes the worker
through ``wake()``.
"""

from __future__ import annotations

import asyncio
import time

from provisiond.engine import queue
from provisiond.engine import worker as worker_module
from provisiond.engine.worker import Worker
from provisiond.runtime import Runtime
from tests.engine.test_queue import make_app, make_users


def test_a_claim_that_took_every_due_task_says_so(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    users = make_users(runtime, 5, prefix="ex")
    worker = Worker(runtime.db, runtime.settings, runtime.vault)
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, users[:3], reason="r", correlation_id="c")
    # Room for two: one is left behind, so more room would have found more.
    got, _, exhausted = worker._claim_in_db(10, 10, {app_id: 2}, [], 8)
    assert len(got) == 2 and not exhausted
    got, _, exhausted = worker._claim_in_db(10, 10, {app_id: 8}, [], 8)
    assert len(got) == 1 and exhausted
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, users[3:], reason="r", correlation_id="c")
    # An app left out (at its depth) may have due tasks: never exhausted.
    got, _, exhausted = worker._claim_in_db(10, 10, {}, [app_id], 8)
    assert got == [] and not exhausted


def test_a_freed_slot_wakes_a_round_unless_the_last_claim_found_nothing_more(
    runtime: Runtime,
) -> None:
    app_id = make_app(runtime)
    users = make_users(runtime, 2, prefix="fr")
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, users, reason="r", correlation_id="c")
    worker = Worker(runtime.db, runtime.settings, runtime.vault)
    with runtime.db.session() as session:
        first, second = queue.claim(session, worker.id, 2)
    now = time.monotonic()
    trusted, stale = now + worker_module.EXHAUSTED_SECONDS, now - 1
    cases = [(False, 0.0, True), (True, trusted, False), (True, stale, True)]
    for exhausted, until, wakes in cases:
        worker._wake = asyncio.Event()
        worker._exhausted_until = until
        worker._slots = {(t.id, t.claimed_at): (app_id, False) for t in (first, second)}
        worker._per_app.clear()
        worker._per_app[app_id] = 2
        worker._release(first)
        # Half of the app's depth is free: worth a round, unless nothing more was due a
        # moment ago (found long ago, it is not trusted: work can come due without a wake).
        assert worker._wake.is_set() is wakes, (exhausted, until)
    # The last slot freed: the worker claims once, whatever the last claim found.
    worker._wake = asyncio.Event()
    worker._exhausted_until = time.monotonic() + worker_module.EXHAUSTED_SECONDS
    worker._release(second)
    assert not worker._slots and worker._wake.is_set()
