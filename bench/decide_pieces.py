"""One user's decide, piece by piece, timed by repetition (steadier on a busy machine).

    .venv/bin/python bench/decide_pieces.py
    # another tree's src against this one (run from that tree, for its bench/_support.py):
    cd /tmp/base && PYTHONPATH=/tmp/base/src /work/wt/.venv/bin/python /work/wt/bench/decide_pieces.py

Set-up (not timed): 50 users in one group assigned to an app (default policy, no account
yet), one batch claimed and read. Timed with ``time.thread_time``, the best of 7 rounds of
2,000 calls, per call: ``decide.snapshot`` of a create, and its parts (evaluate, the mappings,
the fingerprint, the plan, ``planner.diff`` of a create and of an account in sync).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _support import assign_group, create_directory, create_enabled_app, make_runtime, workdir


def best(function: Callable[[], Any], calls: int = 2000, rounds: int = 7) -> float:
    """Microseconds of this thread's CPU per call, the best round's."""
    per_call = []
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(calls):
            function()
        per_call.append((time.thread_time() - started) / calls * 1e6)
    return min(per_call)


def main() -> None:
    from provisiond.domain.directory import UserStatus
    from provisiond.engine import planner, queue
    from provisiond.engine.context import read_contexts
    from provisiond.engine.decide import snapshot
    from provisiond.engine.desired import DirectoryUser, evaluate
    from provisiond.engine.fingerprint import fingerprint
    from provisiond.engine.reader import read_batch
    from provisiond.engine.worker import Worker, _accounts_by_app
    from provisiond.store.tables import utcnow

    with workdir() as wd:
        runtime = make_runtime(f"sqlite:///{wd / 'provisiond.db'}", wd)
        try:
            group_id, _ = create_directory(runtime, 50, "bench-decide")
            app_id = create_enabled_app(runtime, "decide", "http://127.0.0.1:9/v2", concurrency=8)
            assign_group(runtime, app_id, group_id)
            worker = Worker(runtime.db, runtime.settings, runtime.vault)
            with runtime.db.session() as session:
                got = queue.claim(session, worker.id, 16, room={app_id: 16}, default_room=16)
                batch = _accounts_by_app(got)
                contexts = read_contexts(session, worker.vault, batch)
                inputs = read_batch(
                    session, contexts, {a: [t.subject_id for t in ts] for a, ts in batch.items()}
                )
        finally:
            runtime.stop()
            runtime.db.dispose()
    ctx, task = contexts[app_id], got[0]
    keyed = inputs[app_id][task.subject_id]
    user, now = keyed.user, utcnow()
    assert user is not None
    directory_user = DirectoryUser(user.id, UserStatus(user.status), user.profile)
    desired = evaluate(directory_user, keyed.sources, ctx.policy, ctx.roles).desired
    assert desired is not None
    values = directory_user.expression_input()
    pieces: dict[str, Callable[[], Any]] = {
        "decide.snapshot": lambda: snapshot(ctx, keyed, None, queued_at=task.updated_at, now=now),
        "desired.evaluate": lambda: evaluate(directory_user, keyed.sources, ctx.policy, ctx.roles),
        "the mappings": lambda: ctx.policy.attributes(values),
        "fingerprint": lambda: fingerprint(
            ctx.policy_key, user.id, user.status, user.profile, keyed.sources
        ),
        "planner.plan, a create": lambda: planner.plan(
            desired, None, ctx.provisioning, ctx.deprovision, now=now
        ),
        "planner.diff, a create": lambda: planner.diff({}, desired.attributes),
        "planner.diff, in sync": lambda: planner.diff(dict(desired.attributes), desired.attributes),
    }
    for name, function in pieces.items():
        print(f"{name + ':':26s} {best(function):7.2f} µs per user")
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
