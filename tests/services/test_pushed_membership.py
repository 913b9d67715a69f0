"""Who a pushed group should hold in the app (services/pushes.py), and what queues its reconcile.

On SQLite and PostgreSQL: the effective members come from recursive CTEs, which both must
agree on. A directory is built through the services (users, groups, nesting, memberships);
accounts are inserted as rows, as the worker would have left them.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from provisiond.domain.apps import Features, ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Profile
from provisiond.domain.roles import RoleExpression, RoleKind
from provisiond.engine import group_members
from provisiond.runtime import Runtime
from provisiond.services import apps, assignments, directory, nesting, pushes, roles
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account, App, Group, PushedGroup, Task, User

counter = itertools.count()

# An account in the app, as the worker leaves it: (status, has a remote id), or none at all.
ACCOUNT_STATES = [
    None,
    ("active", True),
    ("active", True),
    ("active", False),
    ("deactivated", True),
    ("deleted", True),
]


def new_app(session: Session, runtime: Runtime, name: str) -> App:
    return apps.create_app(
        session,
        SYSTEM,
        runtime.vault,
        name=name,
        label=name,
        connector=ScimConnectorSettings(base_url="http://target.invalid/v2"),
        provisioning=ProvisioningSettings(features=Features(push_groups=True)),
    )


def new_user(session: Session, login: str) -> User:
    profile = Profile.model_validate(
        {"login": login, "email": f"{login}@example.org", "firstName": "A", "lastName": "B"}
    )
    return directory.create_user(session, SYSTEM, profile, activate=True)


def give_account(
    session: Session, app: App, user: User, status: str, remote_id: str | None
) -> None:
    session.add(
        Account(app_id=app.id, user_id=user.id, remote_id=remote_id, status=status, applied={})
    )
    session.flush()


def closure(groups: int, edges: set[tuple[int, int]]) -> dict[int, set[int]]:
    """group -> itself and every group below it, by plain iteration to a fixed point."""
    below = {g: {g} for g in range(groups)}
    changed = True
    while changed:
        changed = False
        for parent, child in edges:
            if not below[child] <= below[parent]:
                below[parent] |= below[child]
                changed = True
    return below


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    groups=st.integers(min_value=1, max_value=6),
    users=st.integers(min_value=0, max_value=7),
    data=st.data(),
)
def test_desired_members_are_the_effective_members_with_an_active_account(
    runtime: Runtime, groups: int, users: int, data: st.DataObject
) -> None:
    index = st.integers(min_value=0, max_value=groups - 1)
    # Acyclic by construction: every edge points forward in a random order of the groups.
    order = data.draw(st.permutations(range(groups)))
    pairs = data.draw(st.lists(st.tuples(index, index).filter(lambda p: p[0] != p[1]), max_size=10))
    edges = {(a, b) if order.index(a) < order.index(b) else (b, a) for a, b in pairs}
    direct = (
        data.draw(st.sets(st.tuples(st.integers(0, users - 1), index), max_size=14))
        if users
        else set()
    )
    accounts = [data.draw(st.sampled_from(ACCOUNT_STATES)) for _ in range(users)]
    # Accounts in another app are no business of this one's groups.
    elsewhere = data.draw(st.sets(st.integers(0, max(users - 1, 0)), max_size=users))

    n = next(counter)
    with runtime.db.session() as session:
        app, other_app = (
            new_app(session, runtime, f"push-{n}"),
            new_app(session, runtime, f"other-{n}"),
        )
        group_rows = [
            directory.create_group(session, SYSTEM, f"g{n}.{i}", None) for i in range(groups)
        ]
        user_rows = [new_user(session, f"u{n}.{i}") for i in range(users)]
        for parent, child in sorted(edges):
            nesting.add_child(session, SYSTEM, group_rows[parent].id, group_rows[child].id)
        for u, g in sorted(direct):
            directory.add_member(session, SYSTEM, group_rows[g].id, user_rows[u].id)
        remote_of: dict[int, str] = {}
        for u, state in enumerate(accounts):
            if state is not None:
                status, has_remote_id = state
                remote_id = f"r-{n}-{u}" if has_remote_id else None
                give_account(session, app, user_rows[u], status, remote_id)
                if status == "active" and remote_id is not None:
                    remote_of[u] = remote_id
        for u in sorted(elsewhere):
            give_account(session, other_app, user_rows[u], "active", f"elsewhere-{n}-{u}")

        below = closure(groups, edges)
        for g, group in enumerate(group_rows):
            members = {u for u, h in direct if h in below[g]}
            expected = {remote_of[u]: user_rows[u].id for u in members if u in remote_of}
            assert group_members.desired_members(session, app.id, "priority", group.id, group.name) == expected, (g, edges, direct)
        assert group_members.desired_members(session, app.id, "priority", None, "") == {}  # the directory group is gone


def test_holders_of_a_group_role_join_the_group_it_names(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        app = new_app(session, runtime, "roles-app")
        ops = directory.create_group(session, SYSTEM, "Ops", None)
        role = roles.create_role(
            session,
            SYSTEM,
            app.id,
            name="operator",
            description=None,
            expression=RoleExpression(kind=RoleKind.GROUP, value="ops"),  # names match casefolded
        )
        holder, inactive, plain, member = (
            new_user(session, n) for n in ("hol", "ina", "pla", "mem")
        )
        for user in (holder, inactive):
            assignments.create_assignment(
                session,
                SYSTEM,
                app.id,
                principal_type="user",
                principal_id=user.id,
                roles_=[role.id],
            )
        assignments.create_assignment(
            session, SYSTEM, app.id, principal_type="user", principal_id=plain.id
        )
        directory.add_member(session, SYSTEM, ops.id, member.id)
        for user, status in (
            (holder, "active"),
            (inactive, "deactivated"),
            (plain, "active"),
            (member, "active"),
        ):
            give_account(session, app, user, status, f"r-{user.login}")

        assert group_members.desired_members(session, app.id, "priority", ops.id, ops.name) == {
            "r-hol": holder.id,  # by the role
            "r-mem": member.id,  # by membership
        }


# -- what queues a group reconcile ------------------------------------------------------------


def group_tasks(session: Session) -> set[tuple[str, str, str]]:
    """(app id, group id, reason) of each queued group task."""
    session.flush()
    rows = session.scalars(select(Task).where(Task.kind == "group", Task.status == "queued"))
    return {(task.app_id, task.subject_id, task.reason) for task in rows}


def forget_tasks(session: Session) -> None:
    session.execute(delete(Task))
    session.flush()


def test_a_change_in_a_nested_group_queues_its_pushed_ancestors(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        app, other = new_app(session, runtime, "nest-app"), new_app(session, runtime, "nest-other")
        top, middle, leaf, sibling = (
            directory.create_group(session, SYSTEM, name, None)
            for name in ("Top", "Middle", "Leaf", "Sibling")
        )
        nesting.add_child(session, SYSTEM, top.id, middle.id)
        nesting.add_child(session, SYSTEM, middle.id, leaf.id)
        pushes.push(session, SYSTEM, app.id, top.id)
        pushes.push(session, SYSTEM, app.id, sibling.id)
        pushes.push(session, SYSTEM, other.id, top.id)
        assert group_tasks(session) == {
            (app.id, top.id, "app.group.push"),
            (app.id, sibling.id, "app.group.push"),
            (other.id, top.id, "app.group.push"),
        }
        forget_tasks(session)
        user = new_user(session, "leafy")

        directory.add_member(session, SYSTEM, leaf.id, user.id)

        # Top holds Leaf's members through Middle, in both apps; Sibling is not above Leaf.
        assert group_tasks(session) == {
            (app.id, top.id, "group.membership"),
            (other.id, top.id, "group.membership"),
        }

        forget_tasks(session)
        pushes.groups_changed(session, SYSTEM, [sibling.id], "test")
        assert group_tasks(session) == {(app.id, sibling.id, "test")}
        forget_tasks(session)
        pushes.groups_changed(session, SYSTEM, [], "test")
        assert group_tasks(session) == set()


def test_an_account_change_queues_the_groups_the_user_is_or_was_in(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        app, other = new_app(session, runtime, "acct-app"), new_app(session, runtime, "acct-other")
        parent, child, unrelated, former = (
            directory.create_group(session, SYSTEM, name, None)
            for name in ("Parent", "Child", "Unrelated", "Former")
        )
        nesting.add_child(session, SYSTEM, parent.id, child.id)
        user = new_user(session, "joiner")
        directory.add_member(session, SYSTEM, child.id, user.id)
        for group in (parent, child, unrelated, former):
            pushes.push(session, SYSTEM, app.id, group.id)
        pushes.push(session, SYSTEM, other.id, parent.id)
        # The user was in Former's app group when it was last applied, and has left it since.
        former_row = session.scalar(
            select(PushedGroup).where(
                PushedGroup.app_id == app.id, PushedGroup.group_id == former.id
            )
        )
        assert former_row is not None
        group_members.store_members(session, former_row.id, {}, {"r-joiner": user.id})
        forget_tasks(session)

        pushes.accounts_changed(session, SYSTEM, app.id, user.id, "app.user.create")

        assert group_tasks(session) == {
            (app.id, child.id, "app.user.create"),  # a direct member
            (app.id, parent.id, "app.user.create"),  # through the nesting
            (app.id, former.id, "app.user.create"),  # to be taken out
        }


def test_store_members_records_exactly_what_was_applied(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        app = new_app(session, runtime, "store-app")
        group = directory.create_group(session, SYSTEM, "Stored", None)
        row = pushes.push(session, SYSTEM, app.id, group.id)
        assert group_members.applied(session, row.id) == {}

        first: dict[str, str | None] = {"r-1": "u-1", "r-2": "u-2", "stranger": None}
        group_members.store_members(session, row.id, {}, first)
        assert group_members.applied(session, row.id) == first

        second: dict[str, str | None] = {"r-2": "u-2", "r-3": "u-3"}
        group_members.store_members(session, row.id, first, second)
        assert group_members.applied(session, row.id) == second
        assert session.get(Group, group.id) is not None
