"""A person's lifecycle change queues a task in each of their apps with a few statements, not a
handful per app (it is on the path of a leaver's revocation), and an app where the change could
pass the policy's safety limit still plans it and holds it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, select

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Lifecycle
from provisiond.domain.policy import Limits, PolicyDocument
from provisiond.engine import queue
from provisiond.runtime import Runtime
from provisiond.services import apps, directory, policies
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account, Run, Task
from tests.engine.test_queue import make_users


def make_apps(rt: Runtime, count: int, prefix: str) -> list[str]:
    with rt.db.session() as session:
        made = []
        for i in range(count):
            app = apps.create_app(
                session, SYSTEM, rt.vault, name=f"{prefix}-{i}", label=f"{prefix} {i}",
                connector=ScimConnectorSettings(
                    base_url="http://127.0.0.1:9/v2", auth={"type": "bearer", "token": "t"}
                ),
                provisioning=ProvisioningSettings(),
            )
            apps.set_provisioning(session, SYSTEM, app, ProvisioningSettings(enabled=True))
            made.append(app.id)
        return made


def give_accounts(rt: Runtime, app_ids: list[str], user_ids: list[str]) -> None:
    """Active account records, as if provisioned: the users reach these apps through them."""
    with rt.db.session() as session:
        session.add_all(
            Account(app_id=app_id, user_id=user_id, remote_id=f"r-{user_id}", status="active",
                    applied={"userName": user_id, "active": True})
            for app_id in app_ids for user_id in user_ids
        )


@contextmanager
def statements(rt: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", count)


def deactivate(rt: Runtime, user_id: str) -> int:
    with statements(rt) as seen, rt.db.session() as session:
        directory.change_lifecycle(session, SYSTEM, user_id, Lifecycle.DEACTIVATE)
    return len(seen)


def test_a_leavers_tasks_cost_the_same_statements_in_two_apps_as_in_eight(
    runtime: Runtime,
) -> None:
    few, many = make_apps(runtime, 2, "few"), make_apps(runtime, 8, "many")
    first, second = make_users(runtime, 2, prefix="leaver")
    give_accounts(runtime, few, [first])
    give_accounts(runtime, many, [second])

    assert deactivate(runtime, first) == deactivate(runtime, second)
    with runtime.db.session() as session:
        queued = session.execute(select(Task.app_id, Task.subject_id, Task.priority).where(
            Task.status == queue.QUEUED)).all()
    assert sorted(queued) == sorted(
        [(a, first, 0) for a in few] + [(a, second, 0) for a in many]
    )


def test_an_app_whose_percentage_limit_the_leaver_passes_holds_them_and_the_others_queue(
    runtime: Runtime,
) -> None:
    limited, free = make_apps(runtime, 2, "limit")
    users = make_users(runtime, 3, prefix="few")
    give_accounts(runtime, [limited, free], users)
    with runtime.db.session() as session:
        # One leaver of three accounts is 33 %: over a limit of 10 %.
        policies.save(session, SYSTEM, apps.get_app(session, limited),
                      PolicyDocument(limits=Limits(max_deprovision_percent=10)))

    deactivate(runtime, users[0])
    with runtime.db.session() as session:
        tasks = session.execute(select(Task.app_id, Task.subject_id).where(
            Task.status == queue.QUEUED)).all()
        held = session.scalars(select(Run).where(Run.status == "held")).all()
    assert tasks == [(free, users[0])]
    assert [(run.app_id, run.held["user_ids"]) for run in held] == [(limited, [users[0]])]
