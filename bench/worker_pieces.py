"""The worker's database-thread pieces alone, timed by repetition (steadier on a busy machine).

    .venv/bin/python bench/worker_pieces.py [--users 200] [--batch 16] [--repeats 150]
    # another tree's src against this one: PYTHONPATH=/tmp/base/src .venv/bin/python ...

Set-up (not timed): N users in one group, an app at concurrency 8 (no target is reached),
the group assigned (N tasks queued). Timed with ``time.thread_time`` (this thread's CPU):

  * claim:   ``queue.claim`` of ``--batch`` tasks, rolled back, ``--repeats`` times;
  * prepare: ``Worker._prepare_all`` of one claimed batch (the read of its users, groups,
             assignments, accounts and the app's context, and the decide of each key),
             ``--repeats`` times (it writes nothing);
  * write:   the writer's transaction for that batch as if every key had been created
             (``writer.write_outcomes`` and ``successors_queued``: account upserts, events,
             task closes, the run's counters), rolled back, ``--repeats`` times.

The minimum and median per call are printed: the minimum is what the work costs when the
machine lets it run, the median what it cost here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import assign_group, create_directory, create_enabled_app, make_runtime, workdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=150)
    args = parser.parse_args()
    from sqlalchemy.orm import Session

    from provisiond.engine import queue
    from provisiond.engine.worker import Worker, _accounts_by_app
    from provisiond.engine.writer import successors_queued, write_outcomes
    from provisiond.store.tables import utcnow

    with workdir() as wd:
        runtime = make_runtime(f"sqlite:///{wd / 'provisiond.db'}", wd)
        try:
            group_id, _ = create_directory(runtime, args.users, "bench-pieces")
            app_id = create_enabled_app(runtime, "pieces", "http://127.0.0.1:9/v2", concurrency=8)
            assign_group(runtime, app_id, group_id)
            worker = Worker(runtime.db, runtime.settings, runtime.vault)
            room = {app_id: args.batch}
            claims = []
            for _ in range(args.repeats):
                with Session(runtime.db.engine) as session:
                    started = time.thread_time()
                    got = queue.claim(session, worker.id, args.batch, room=room,
                                      default_room=args.batch)
                    claims.append(time.thread_time() - started)
                    session.rollback()
            assert len(got) == args.batch, got
            with runtime.db.session() as session:
                got = queue.claim(session, worker.id, args.batch, room=room,
                                  default_room=args.batch)
            batch = _accounts_by_app(got)
            prepares = []
            for _ in range(args.repeats):
                started = time.thread_time()
                prepared = worker._prepare_all(batch)
                prepares.append(time.thread_time() - started)
            outcomes = _created(prepared)
            assert len(outcomes) == args.batch, len(outcomes)
            writes = []
            for _ in range(args.repeats):
                # As Worker._write, but rolled back: each repeat writes the same batch again.
                with runtime.db._serialised(), Session(runtime.db.engine) as session:
                    started = time.thread_time()
                    with session.begin():
                        owned = write_outcomes(session, outcomes, utcnow())
                        successors_queued(session, outcomes)
                        session.flush()
                        writes.append(time.thread_time() - started)
                        session.rollback()
                assert len(owned) == args.batch, owned
        finally:
            runtime.stop()
            runtime.db.dispose()

    def shown(values: list[float]) -> str:
        per_task = 1000 / args.batch
        return (f"min {min(values) * per_task:.3f} / median "
                f"{statistics.median(values) * per_task:.3f} ms per task")

    print(f"claim of {args.batch}:   {shown(claims)}")
    print(f"prepare of {args.batch}: {shown(prepares)}")
    print(f"write of {args.batch}:   {shown(writes)}")
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _created(prepared: dict[str, Any]) -> list[Any]:
    """The outcomes of a batch whose every key was created, as the worker builds them."""
    from provisiond.engine.executor import OUTCOME_OF, Result
    from provisiond.engine.outcomes import applied
    from provisiond.engine.planner import applied as after
    from provisiond.store.tables import utcnow

    outcomes = []
    for ready in prepared.values():
        for task, snap in ready.apply:
            operation = snap.pending
            assert operation is not None, "the bench's users have no account yet"
            result = Result(outcome=OUTCOME_OF[operation.kind], operation=operation)
            result.step("scope", snap.reason, policy_version=0)
            result.step("lookup", "no account with this userName")
            result.step("create", "created", remote_id=f"remote-{task.subject_id}")
            result.account = after(operation, None, f"remote-{task.subject_id}")
            outcomes.append(applied(task, snap, result, utcnow()))
    return outcomes


if __name__ == "__main__":
    main()
