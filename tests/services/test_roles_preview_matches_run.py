"""Property: with app roles, a preview is exactly what the reconcile then does, and after it
there is nothing left to do (fingerprints carry the role inputs)."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisiond.demo.target import build
from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Profile
from provisiond.runtime import Runtime
from provisiond.services import apps, assignments, directory, roles, runs
from provisiond.services.context import SYSTEM
from tests.services.test_preview_matches_run import counter, drain, last_event, performed, plan_of

ROLES = ["admin", "editor", "viewer"]
groups_of = st.lists(st.frozensets(st.integers(0, 2), max_size=3), min_size=1, max_size=5)
grants = st.lists(st.sampled_from(ROLES), max_size=2, unique=True)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    memberships=groups_of,
    group_roles=st.tuples(grants, grants, grants),
    direct=grants,
    mode=st.sampled_from(["priority", "combine"]),
    change=st.tuples(st.integers(0, 2), grants),
)
def test_role_changes_preview_exactly(
    runtime: Runtime, memberships: list[frozenset[int]], group_roles: tuple[list[str], ...],
    direct: list[str], mode: str, change: tuple[int, list[str]],
) -> None:
    runtime.transport = httpx.ASGITransport(app=build(["t"]))
    n = next(counter)
    with runtime.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, runtime.vault, name=f"rolesprop-{n}", label="R",
            connector=ScimConnectorSettings(base_url="http://target.invalid/v2",
                                            auth={"type": "bearer", "token": "t"}),
            provisioning=ProvisioningSettings(),
        )
        apps.set_provisioning(session, SYSTEM, app, ProvisioningSettings(enabled=True, role_mode=mode))
        for name in ROLES:
            roles.create_role(session, SYSTEM, app.id, name=name, description=None, expression=None)
        groups = [directory.create_group(session, SYSTEM, f"rp-{n}-{g}", None) for g in range(3)]
        made = [
            assignments.create_assignment(session, SYSTEM, app.id, principal_type="group",
                                          principal_id=group.id, roles_=group_roles[g], priority=g)[0]
            for g, group in enumerate(groups)
        ]
        ids = []
        for i, member_of in enumerate(memberships):
            user = directory.create_user(session, SYSTEM, Profile(
                login=f"rp{n}.{i}", email=f"rp{n}.{i}@example.org", firstName="R", lastName=str(i)),
                activate=True)
            for g in member_of:
                directory.add_member(session, SYSTEM, groups[g].id, user.id)
            ids.append(user.id)
        assignments.create_assignment(session, SYSTEM, app.id, principal_type="user",
                                      principal_id=ids[0], roles_=direct)
        app_id, changed = app.id, made[change[0]].id
    drain(runtime)
    assert plan_of(runtime, app_id) == {}

    # Change one group's roles: the preview (taken before the worker runs) is what it does.
    with runtime.db.session() as session:
        assignments.update_assignment(session, SYSTEM, app_id, changed, role_refs=change[1])
    expected = plan_of(runtime, app_id)
    mark = last_event(runtime)
    drain(runtime)
    assert performed(runtime, app_id, mark) == expected
    assert plan_of(runtime, app_id) == {}
    with runtime.db.session() as session:  # a full reconcile finds nothing either
        runs.reconcile_users(session, SYSTEM, apps.get_app(session, app_id), ids, reason="t",
                             kind="policy")
    mark = last_event(runtime)
    drain(runtime)
    assert performed(runtime, app_id, mark) == {}
