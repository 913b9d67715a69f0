"""What the confirm pages count: services.impact plans a change in a savepoint and rolls it
back. Property: the count is exactly the group members who would lose their only assignment
while holding a live account, and nothing is written (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Profile
from provisiond.runtime import Runtime
from provisiond.services import apps, assignments, directory, impact
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account, Assignment, Event, Task, User

counter = itertools.count()
# Per user: in the assigned group, assigned directly, and the account provisiond holds.
USER = st.tuples(st.booleans(), st.booleans(), st.sampled_from([None, "active", "deactivated"]))


def _written(runtime: Runtime) -> tuple[int, ...]:
    with runtime.db.session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Task, Event, Assignment, Account, User)
        )


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(people=st.lists(USER, min_size=1, max_size=6))
def test_unassigning_counts_exactly_who_loses_access_and_writes_nothing(
    runtime: Runtime, people: list[tuple[bool, bool, str | None]]
) -> None:
    n = next(counter)
    with runtime.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, runtime.vault, name=f"imp-{n}", label=f"Imp {n}",
            connector=ScimConnectorSettings(base_url="http://127.0.0.1:9/v2"),
            provisioning=ProvisioningSettings(),
        )
        # Enabled as if its connection test had passed (create_app always starts it off).
        app.provisioning = {**app.provisioning, "enabled": True}
        group = directory.create_group(session, SYSTEM, f"Imp group {n}", None)
        expected = set()
        for i, (member, direct, account) in enumerate(people):
            login = f"imp{n}.u{i}"
            user = directory.create_user(
                session, SYSTEM,
                Profile(login=login, email=f"{login}@example.org", firstName="I", lastName="U"),
                activate=True,
            )
            if member:
                directory.add_member(session, SYSTEM, group.id, user.id)
            if direct:
                assignments.create_assignment(
                    session, SYSTEM, app.id, principal_type="user", principal_id=user.id
                )
            if account is not None:
                session.add(Account(app_id=app.id, user_id=user.id, remote_id=f"r{i}",
                                    status=account, applied={}))
            if member and not direct and account == "active":
                expected.add(login)
        by_group, _ = assignments.create_assignment(
            session, SYSTEM, app.id, principal_type="group", principal_id=group.id
        )
        app_id, assignment_id = app.id, by_group.id
    before = _written(runtime)
    with runtime.db.session() as session:
        found = impact.of_unassign(session, app_id, assignment_id)
    assert _written(runtime) == before
    assert found.count == len(expected)
    assert {login for a in found.apps for login in a.logins} == expected
