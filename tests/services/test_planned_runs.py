"""A large run where most users hold accounts is planned from the records first: only users
whose plan is not empty get a task, the others are counted unchanged at once."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from provisiond.engine import queue
from provisiond.engine.worker import Worker
from provisiond.runtime import Runtime
from provisiond.services import apps, assignments, directory, runs
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account, Task
from tests.engine.test_queue import make_app, make_users
from tests.support.servers import scim_target


def drain(rt: Runtime) -> None:
    asyncio.run(Worker(rt.db, rt.settings, rt.vault).drain(timeout=120))


def test_a_run_over_accounts_in_sync_queues_only_what_changes(runtime: Runtime) -> None:
    count = runs.BULK_RUN + 10
    with scim_target() as base:
        app_id = make_app(runtime, base)
        users = make_users(runtime, count, prefix="planned")
        with runtime.db.session() as session:
            group = directory.create_group(session, SYSTEM, "Planned", None)
            for user_id in users:
                directory.add_member(session, SYSTEM, group.id, user_id)
            assignments.create_assignment(session, SYSTEM, app_id, principal_type="group",
                                          principal_id=group.id)
        drain(runtime)
        with runtime.db.session() as session:
            before = session.scalar(select(Task.id).order_by(Task.created_at.desc()).limit(1))
            run = runs.reconcile_users(session, SYSTEM, apps.get_app(session, app_id),
                                       runs.everyone(session, app_id), reason="t", kind="policy")
            assert run is not None
            assert (run.status, run.total, run.counts["unchanged"]) == ("succeeded", count, count)
            newest = session.scalar(select(Task.id).order_by(Task.created_at.desc()).limit(1))
        assert newest == before  # nothing queued

        # Three records say the app holds something else: only those three are reconciled.
        drifted = users[:3]
        with runtime.db.session() as session:
            session.execute(update(Account).where(Account.user_id.in_(drifted))
                            .values(applied={"userName": "someone-else"}, fingerprint=None))
            run = runs.reconcile_users(session, SYSTEM, apps.get_app(session, app_id),
                                       runs.everyone(session, app_id), reason="t", kind="policy")
            assert run is not None and run.status == "running"
            assert (run.total, run.counts["unchanged"]) == (count, count - 3)
            queued = set(session.scalars(select(Task.subject_id).where(
                Task.status == queue.QUEUED, Task.run_id == run.id)))
            run_id = run.id
        assert queued == set(drifted)
        drain(runtime)
        with runtime.db.session() as session:
            finished = runs.get_run(session, run_id)
            assert finished.status == "succeeded"
            assert finished.counts["updated"] == 3 and finished.counts["unchanged"] == count - 3
