"""A policy save over the safety limit is pending, never in force, until an admin approves it.

The property: whatever sequence of saves, cancels, approvals and one-user directory edits, the
accounts are exactly those the *approved* policy gives (a model that knows only which saves
were within the limit or approved), and no step but an approval deprovisions more than the
limit. Before this, a cancelled held save stayed in force and each later profile edit
deprovisioned one more user under it.

Runs against the real scim2-server application in process (httpx's ASGI transport), as
tests/services/test_preview_matches_run.py does, so that hypothesis can afford the examples.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from provisiond.demo.target import build
from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Lifecycle, Profile
from provisiond.domain.policy import Limits, PolicyDocument
from provisiond.engine.worker import Worker
from provisiond.runtime import Runtime
from provisiond.services import apps, assignments, directory, policies, policy_saves, preview, runs
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account, Run

DEPARTMENTS = ["A", "B", "C"]
# Each scope with the departments it keeps, for the model.
SCOPES: list[tuple[str | None, frozenset[str]]] = [
    (None, frozenset(DEPARTMENTS)),
    ('user.department == "A"', frozenset({"A"})),
    ('user.department in ["A", "B"]', frozenset({"A", "B"})),
    ('user.department != "C"', frozenset({"A", "B"})),
    ('user.department == "C"', frozenset({"C"})),
]
LIMIT = 2
PEOPLE = 5
counter = itertools.count()

steps = st.lists(
    st.one_of(
        # A save with the limit, or one that also drops it (the limit in force still applies).
        st.tuples(st.just("save"), st.integers(0, len(SCOPES) - 1), st.sampled_from([LIMIT, None])),
        st.tuples(st.just("edit"), st.integers(0, PEOPLE - 1), st.sampled_from(DEPARTMENTS)),
        st.tuples(st.just("cancel")),
        st.tuples(st.just("approve")),
    ),
    min_size=1,
    max_size=5,
)


@dataclass
class Model:
    """What the accounts should be: only approved policies count."""

    departments: list[str]
    scope: frozenset[str] = frozenset(DEPARTMENTS)
    limit: int | None = LIMIT
    pending: tuple[frozenset[str], int | None] | None = None
    active: set[int] = field(default_factory=set)

    def expected(self) -> set[int]:
        return {i for i, d in enumerate(self.departments) if d in self.scope}


def drain(rt: Runtime) -> None:
    asyncio.run(Worker(rt.db, rt.settings, rt.vault, transport=rt.transport).drain(timeout=60))


def make_world(rt: Runtime, departments: list[str]) -> tuple[str, list[str]]:
    n = next(counter)
    with rt.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, rt.vault, name=f"held-{n}", label="Held",
            connector=ScimConnectorSettings(base_url="http://target.invalid/v2",
                                            auth={"type": "bearer", "token": "t"}),
            provisioning=ProvisioningSettings(),
        )
        policies.save(session, SYSTEM, app, PolicyDocument(limits=Limits(max_deprovisions=LIMIT)))
        group = directory.create_group(session, SYSTEM, f"held-{n}", None)
        assignments.create_assignment(session, SYSTEM, app.id, principal_type="group",
                                      principal_id=group.id, role=None, priority=None)
        ids = []
        for i, department in enumerate(departments):
            user = directory.create_user(session, SYSTEM, Profile(
                login=f"h{n}.{i}", email=f"h{n}.{i}@example.org", firstName="H", lastName=str(i),
                department=department), activate=True)
            directory.add_member(session, SYSTEM, group.id, user.id)
            ids.append(user.id)
        apps.set_provisioning(session, SYSTEM, app, ProvisioningSettings(enabled=True))
        runs.reconcile_users(session, SYSTEM, app, ids, reason="test", kind="policy")
    drain(rt)
    return app.id, ids


def active_accounts(rt: Runtime, app_id: str, ids: list[str]) -> set[int]:
    with rt.db.session() as session:
        rows = session.execute(select(Account.user_id, Account.status).where(Account.app_id == app_id))
        active = {user_id for user_id, status in rows if status == "active"}
    return {i for i, user_id in enumerate(ids) if user_id in active}


def held_run(rt: Runtime, app_id: str) -> str | None:
    with rt.db.session() as session:
        return session.scalar(select(Run.id).where(Run.app_id == app_id, Run.status == "held"))


# SQLite only, so it stays well under a minute: the regression tests below run on both.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(departments=st.lists(st.sampled_from(DEPARTMENTS), min_size=PEOPLE, max_size=PEOPLE),
       script=steps)
def test_no_sequence_deprovisions_past_the_limit_without_an_approval(
    runtime: Runtime, departments: list[str], script: list[tuple[Any, ...]]
) -> None:
    runtime.transport = httpx.ASGITransport(app=build(["t"]))  # a fresh, empty app each example
    app_id, ids = make_world(runtime, departments)
    model = Model(list(departments))
    assert active_accounts(runtime, app_id, ids) == model.expected() == set(range(PEOPLE))
    for step in script:
        before = active_accounts(runtime, app_id, ids)
        if step[0] == "save":
            _, index, limit = step
            scope, keeps = SCOPES[index]
            with runtime.db.session() as session:
                app = apps.get_app(session, app_id)
                saved = policy_saves.save(session, SYSTEM, app, PolicyDocument(
                    scope=scope, limits=Limits(max_deprovisions=limit)))
            if saved.changed:
                model.pending = None  # a newer save replaces one waiting
                leaving = {i for i in before if model.departments[i] not in keeps}
                allowed = min(x for x in (model.limit, limit, len(ids)) if x is not None)
                if len(leaving) > allowed:
                    assert saved.pending is not None, (step, leaving)
                    model.pending = (keeps, limit)
                else:
                    assert saved.pending is None, (step, leaving)
                    model.scope, model.limit = keeps, limit
        elif step[0] == "edit":
            _, who, department = step
            with runtime.db.session() as session:
                directory.update_user(session, SYSTEM, ids[who],
                                      {"department": department})
            model.departments[who] = department
        elif (run_id := held_run(runtime, app_id)) is not None:
            assert model.pending is not None
            with runtime.db.session() as session:
                if step[0] == "approve":
                    runs.approve(session, SYSTEM, run_id)
                    model.scope, model.limit = model.pending
                else:
                    runs.cancel(session, SYSTEM, run_id)
            model.pending = None
        else:
            assert model.pending is None
        drain(runtime)
        after = active_accounts(runtime, app_id, ids)
        assert after == model.expected(), (step, departments, script)
        if step[0] != "approve":
            assert len(before - after) <= LIMIT, (step, before, after)
        with runtime.db.session() as session:
            # The pending policy is shown as such; the version in force is the model's.
            shown = policy_saves.pending_of(session, app_id)
            assert (shown is not None) == (model.pending is not None)
            planned = preview.preview(session, SYSTEM, app_id, None)
        assert planned["changes"] == []  # the worker did what the version in force says
    with runtime.db.session() as session:
        # A leaver is deprovisioned at once, even with a policy pending: it holds nothing back.
        for i in sorted(model.expected())[:1]:
            directory.change_lifecycle(session, SYSTEM, ids[i], Lifecycle.DEACTIVATE)
            model.departments[i] = "gone"
    drain(runtime)
    assert active_accounts(runtime, app_id, ids) == model.expected()


def _save(rt: Runtime, app_id: str, scope: str | None, limit: int | None = LIMIT) -> policy_saves.Saved:
    with rt.db.session() as session:
        return policy_saves.save(session, SYSTEM, apps.get_app(session, app_id),
                                 PolicyDocument(scope=scope, limits=Limits(max_deprovisions=limit)))


def test_a_cancelled_held_save_leaves_the_policy_in_force(runtime: Runtime) -> None:
    """The issue's report: held, cancelled, then one profile edit deprovisioned at once."""
    runtime.transport = httpx.ASGITransport(app=build(["t"]))
    app_id, ids = make_world(runtime, ["A", "B", "B", "C", "C"])
    saved = _save(runtime, app_id, 'user.department == "A"')
    assert saved.pending is not None and saved.run is not None
    assert saved.run.status == "held" and saved.version == 1  # version 1 stays in force
    assert saved.pending["document"]["scope"] == 'user.department == "A"'
    with runtime.db.session() as session:
        assert policies.current(session, app_id)[1].scope is None
        assert preview.preview(session, SYSTEM, app_id, None)["pending"]["run_id"] == saved.run.id
    # A second save over the limit replaces the first: one pending policy at a time.
    again = _save(runtime, app_id, 'user.department == "C"')
    assert again.pending is not None and again.run is not None
    with runtime.db.session() as session:
        assert runs.get_run(session, saved.run.id).status == "cancelled"
        runs.cancel(session, SYSTEM, again.run.id)
        assert policy_saves.pending_of(session, app_id) is None
    # One user's profile edit: reconciled under version 1, where everyone is in scope.
    with runtime.db.session() as session:
        directory.update_user(session, SYSTEM, ids[1], {"title": "Manager"})
    drain(runtime)
    assert active_accounts(runtime, app_id, ids) == set(range(5))
    # Within the limit a save is in force at once, as before.
    within = _save(runtime, app_id, 'user.department != "C"')
    assert within.pending is None and within.version == 2
    drain(runtime)
    assert active_accounts(runtime, app_id, ids) == {0, 1, 2}


def test_an_approved_save_takes_effect_and_a_stale_one_cannot(runtime: Runtime) -> None:
    runtime.transport = httpx.ASGITransport(app=build(["t"]))
    app_id, ids = make_world(runtime, ["A", "B", "B", "C", "C"])
    saved = _save(runtime, app_id, 'user.department == "A"')
    assert saved.run is not None
    with runtime.db.session() as session:
        run = runs.approve(session, SYSTEM, saved.run.id)
        assert (run.status, run.policy_version) == ("running", 2)
        assert policies.current(session, app_id)[1].scope == 'user.department == "A"'
    drain(runtime)
    assert active_accounts(runtime, app_id, ids) == {0}
    with runtime.db.session() as session:
        assert runs.get_run(session, saved.run.id).counts["deactivated"] == 4


def test_directory_changes_over_the_limit_are_still_held_with_a_policy_pending(
    runtime: Runtime,
) -> None:
    """Many leavers at once through a group change: held by the change's own run, deferred by
    the worker; a lone leaver is deprovisioned at once, the pending policy holds nothing back."""
    runtime.transport = httpx.ASGITransport(app=build(["t"]))
    app_id, ids = make_world(runtime, ["A", "B", "B", "C", "C"])
    pending = _save(runtime, app_id, 'user.department == "A"')
    assert pending.pending is not None
    with runtime.db.session() as session:
        directory.change_lifecycle(session, SYSTEM, ids[4], Lifecycle.DEACTIVATE)
    drain(runtime)
    assert active_accounts(runtime, app_id, ids) == {0, 1, 2, 3}
    with runtime.db.session() as session:
        assignment = assignments.list_assignments(session, app_id)[0]
        assignments.delete_assignment(session, SYSTEM, app_id, assignment.id)
        held = session.scalars(select(Run).where(
            Run.app_id == app_id, Run.status == "held", Run.kind == "change")).all()
        assert len(held) == 1 and held[0].held is not None
        assert held[0].held["counts"]["deactivate"] == 4
    drain(runtime)
    assert active_accounts(runtime, app_id, ids) == {0, 1, 2, 3}
