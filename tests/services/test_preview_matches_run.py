"""Property: a preview is exactly what the run then does, and after the run there is nothing.

Runs against the real scim2-server application, in process (httpx's ASGI transport), so that
hypothesis can afford many examples; the HTTP path itself is covered by tests/e2e.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisiond.demo.target import build
from provisiond.domain.apps import DeprovisionAction, ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Lifecycle, Profile
from provisiond.domain.policy import DEFAULT_MAPPINGS, PolicyDocument
from provisiond.engine.worker import Worker
from provisiond.runtime import Runtime
from provisiond.services import apps, assignments, directory, policies, preview, runs
from provisiond.services.context import SYSTEM

DEPARTMENTS = ["Engineering", "Support", "Sales"]
SCOPES = [None, 'user.department == "Engineering"', 'user.department in ["Engineering", "Support"]',
          'user.title != "Intern"']
MAPPINGS = [
    DEFAULT_MAPPINGS,
    {**DEFAULT_MAPPINGS, "title": "user.title"},
    {"userName": "user.login", "displayName": 'user.lastName + ", " + user.firstName',
     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "user.department"},
]
people = st.lists(
    st.tuples(st.sampled_from(DEPARTMENTS), st.sampled_from(["Engineer", "Intern", "Lead"]),
              st.sampled_from(["active", "active", "suspended", "deactivated"])),
    min_size=1, max_size=6,
)
counter = itertools.count()
OPERATION_OF = {"created": "create", "updated": "update", "deactivated": "deactivate",
                "reactivated": "reactivate", "deleted": "delete"}


def make_world(rt: Runtime, population: list[tuple[str, str, str]], first: PolicyDocument,
               action: DeprovisionAction) -> tuple[str, list[str]]:
    n = next(counter)
    with rt.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, rt.vault, name=f"prop-{n}", label="Prop",
            connector=ScimConnectorSettings(base_url="http://target.invalid/v2", auth={"type": "bearer", "token": "t"}),
            provisioning=ProvisioningSettings(),
        )
        apps.set_provisioning(session, SYSTEM, app, ProvisioningSettings(enabled=True, deprovision_action=action))
        policies.save(session, SYSTEM, app, first)
        group = directory.create_group(session, SYSTEM, f"prop-{n}", None)
        assignments.create_assignment(session, SYSTEM, app.id, principal_type="group",
                                      principal_id=group.id, role=None, priority=None)
        ids = []
        for i, (department, title, _) in enumerate(population):
            user = directory.create_user(session, SYSTEM, Profile(
                login=f"p{n}.{i}", email=f"p{n}.{i}@example.org", firstName="P", lastName=str(i),
                department=department, title=title), activate=True)
            directory.add_member(session, SYSTEM, group.id, user.id)
            ids.append(user.id)
        return app.id, ids


def drain(rt: Runtime) -> None:
    asyncio.run(Worker(rt.db, rt.settings, rt.vault, transport=rt.transport).drain(timeout=60))


def plan_of(rt: Runtime, app_id: str, draft: PolicyDocument | None = None) -> dict[str, str]:
    with rt.db.session() as session:
        result = preview.preview(session, SYSTEM, app_id, draft, limit=1000)
    return {change["user_id"]: change["operation"] for change in result["changes"]}


def performed(rt: Runtime, app_id: str, since: int) -> dict[str, str]:
    from sqlalchemy import select

    from provisiond.store.tables import Event

    with rt.db.session() as session:
        rows = session.scalars(select(Event).where(
            Event.app_id == app_id, Event.id > since, Event.action.startswith("app.user."),
            Event.outcome == "success")).all()
        return {row.user_id or "": str(row.details["operation"]) for row in rows}


def last_event(rt: Runtime) -> int:
    from sqlalchemy import func, select

    from provisiond.store.tables import Event

    with rt.db.session() as session:
        return session.scalar(select(func.max(Event.id))) or 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    population=people,
    first_scope=st.sampled_from(SCOPES),
    second_scope=st.sampled_from(SCOPES),
    mappings=st.sampled_from(MAPPINGS),
    action=st.sampled_from(list(DeprovisionAction)),
)
def test_preview_equals_the_run_and_a_run_leaves_nothing(
    runtime: Runtime, population: list[tuple[str, str, str]], first_scope: str | None,
    second_scope: str | None, mappings: dict[str, str], action: DeprovisionAction,
) -> None:
    runtime.transport = httpx.ASGITransport(app=build(["t"]))  # a fresh, empty app each example
    first = PolicyDocument(scope=first_scope)
    app_id, ids = make_world(runtime, population, first, action)

    # First the initial provisioning: preview it, run it, compare.
    expected = plan_of(runtime, app_id)
    mark = last_event(runtime)
    with runtime.db.session() as session:
        runs.reconcile_users(session, SYSTEM, apps.get_app(session, app_id), ids, reason="test", kind="policy")
    drain(runtime)
    assert performed(runtime, app_id, mark) == expected
    assert plan_of(runtime, app_id) == {}

    # Then lifecycle changes and a new policy: the draft's preview is what saving it does.
    with runtime.db.session() as session:
        for user_id, (_, _, status) in zip(ids, population, strict=True):
            if status == "suspended":
                directory.change_lifecycle(session, SYSTEM, user_id, Lifecycle.SUSPEND)
            elif status == "deactivated":
                directory.change_lifecycle(session, SYSTEM, user_id, Lifecycle.DEACTIVATE)
    drain(runtime)
    assert plan_of(runtime, app_id) == {}
    second = PolicyDocument(scope=second_scope, mappings=mappings)
    expected = plan_of(runtime, app_id, second)
    mark = last_event(runtime)
    with runtime.db.session() as session:
        app = apps.get_app(session, app_id)
        policies.save(session, SYSTEM, app, second)
        runs.reconcile_users(session, SYSTEM, app, runs.everyone(session, app_id), reason="test", kind="policy")
    drain(runtime)
    done: dict[str, Any] = performed(runtime, app_id, mark)
    assert done == expected
    assert plan_of(runtime, app_id) == {}
