"""Nested groups and group rules, at the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from provisiond.domain.directory import Lifecycle, Profile
from provisiond.errors import Conflict, Invalid, NotFound
from provisiond.runtime import Runtime
from provisiond.services import directory, nesting, reach
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Event, GroupMember

counter = itertools.count()


def reference_members(
    edges: set[tuple[int, int]], direct: set[tuple[int, int]], groups: int
) -> dict[int, set[int]]:
    """The plain transitive closure: a group's members and those of everything below it."""
    below = {g: {g} for g in range(groups)}
    changed = True
    while changed:
        changed = False
        for parent, child in edges:
            if not below[child] <= below[parent]:
                below[parent] |= below[child]
                changed = True
    return {g: {u for u, h in direct if h in below[g]} for g in range(groups)}


def reaches(edges: set[tuple[int, int]], start: int, goal: int) -> bool:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for parent, child in edges:
            if parent == node and child not in seen:
                seen.add(child)
                todo.append(child)
    return goal in seen


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    groups=st.integers(min_value=1, max_value=6),
    users=st.integers(min_value=0, max_value=5),
    data=st.data(),
)
def test_effective_membership_is_the_transitive_closure_and_cycles_are_refused(
    runtime: Runtime, groups: int, users: int, data: st.DataObject
) -> None:
    index = st.integers(min_value=0, max_value=groups - 1)
    attempts = data.draw(st.lists(st.tuples(index, index), max_size=12))
    direct = data.draw(
        st.sets(st.tuples(st.integers(0, max(users - 1, 0)), index), max_size=10)
        if users
        else st.just(set())
    )
    n = next(counter)
    edges: set[tuple[int, int]] = set()
    with runtime.db.session() as session:
        group_ids = [
            directory.create_group(session, SYSTEM, f"g{n}.{i}", None).id for i in range(groups)
        ]
        user_ids = [
            directory.create_user(session, SYSTEM, _profile(f"u{n}.{i}"), activate=True).id
            for i in range(users)
        ]
        for user, group in direct:
            directory.add_member(session, SYSTEM, group_ids[group], user_ids[user])
        for parent, child in attempts:
            if parent == child or reaches(edges, child, parent):
                with pytest.raises(Conflict, match=" → "):
                    nesting.add_child(session, SYSTEM, group_ids[parent], group_ids[child])
                continue
            nesting.add_child(session, SYSTEM, group_ids[parent], group_ids[child])
            edges.add((parent, child))
        expected = reference_members(edges, direct, groups)
        found = reach.effective_members(session, group_ids)
        assert {g: found[group_ids[g]] for g in range(groups)} == {
            g: {user_ids[u] for u in members} for g, members in expected.items()
        }
        for u, user_id in enumerate(user_ids):
            assert reach.effective_groups_of(session, user_id) == {
                group_ids[g] for g in range(groups) if u in expected[g]
            }


def _profile(login: str, **extra: object) -> Profile:
    return Profile.model_validate(
        {
            "login": login,
            "email": f"{login}@example.org",
            "firstName": "A",
            "lastName": "B",
            **extra,
        }
    )


def test_cycle_messages_name_the_path(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        a, b, c = (directory.create_group(session, SYSTEM, name, None) for name in "ABC")
        nesting.add_child(session, SYSTEM, a.id, b.id)
        nesting.add_child(session, SYSTEM, b.id, c.id)
        with pytest.raises(Conflict, match="A → A"):
            nesting.add_child(session, SYSTEM, a.id, a.id)
        with pytest.raises(Conflict, match="B → A → B"):
            nesting.add_child(session, SYSTEM, b.id, a.id)
        with pytest.raises(Conflict, match="C → A → B → C"):
            nesting.add_child(session, SYSTEM, c.id, a.id)
        assert nesting.add_child(session, SYSTEM, a.id, b.id) is False  # already there
        nesting.remove_child(session, SYSTEM, a.id, b.id)
        with pytest.raises(NotFound):
            nesting.remove_child(session, SYSTEM, a.id, b.id)
        nesting.add_child(session, SYSTEM, c.id, a.id)  # no cycle any more
        directory.delete_group(session, SYSTEM, a.id)
        assert [g.name for g in nesting.children_of(session, c.id)] == []
        assert [g.name for g in nesting.children_of(session, b.id)] == ["C"]


def test_rule_groups_follow_profiles_and_refuse_manual_members(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        ada = directory.create_user(
            session, SYSTEM, _profile("ada", department="Sales"), activate=True
        )
        bob = directory.create_user(session, SYSTEM, _profile("bob"), activate=True)
        with pytest.raises(Invalid) as refused:
            directory.create_group(session, SYSTEM, "Bad", None, 'user.department == "Sales" &&')
        assert refused.value.extra["position"] is not None
        with pytest.raises(Invalid, match="unknown attribute"):
            directory.create_group(session, SYSTEM, "Bad", None, "user.departmnt == 'x'")
        sales = directory.create_group(session, SYSTEM, "Sales", None, 'user.department == "Sales"')
        assert [u.login for u in directory.members(session, sales.id)] == ["ada"]
        # bob has no department: the rule fails for him, which is logged, and he is not in
        failures = session.scalars(
            select(Event).where(Event.action == "group.rule.evaluate", Event.outcome == "failure")
        ).all()
        assert [e.user_id for e in failures] == [bob.id]
        assert "department" in failures[0].message
        with pytest.raises(Conflict, match="rule"):
            directory.add_member(session, SYSTEM, sales.id, bob.id)
        with pytest.raises(Conflict, match="rule"):
            directory.remove_member(session, SYSTEM, sales.id, ada.id)

        directory.update_user(session, SYSTEM, bob.id, {"department": "Sales"})
        directory.update_user(session, SYSTEM, ada.id, {"department": "Support"})
        assert [u.login for u in directory.members(session, sales.id)] == ["bob"]
        added = session.scalars(
            select(Event).where(
                Event.action == "group.user_membership.add", Event.user_id == bob.id
            )
        ).one()
        assert added.actor == "rule:Sales"

        carl = directory.create_user(
            session, SYSTEM, _profile("carl", department="Sales"), activate=False
        )
        assert {u.login for u in directory.members(session, sales.id)} == {"bob", "carl"}
        directory.update_group(session, SYSTEM, sales.id, None, None, 'user.status == "active"')
        assert {u.login for u in directory.members(session, sales.id)} == {"ada", "bob"}
        directory.change_lifecycle(session, SYSTEM, carl.id, Lifecycle.ACTIVATE)
        assert {u.login for u in directory.members(session, sales.id)} == {"ada", "bob", "carl"}

        directory.update_group(session, SYSTEM, sales.id, None, None, None)  # static again
        sources = set(
            session.scalars(select(GroupMember.source).where(GroupMember.group_id == sales.id))
        )
        assert sources == {"manual"}
        directory.remove_member(session, SYSTEM, sales.id, ada.id)
        assert {u.login for u in directory.members(session, sales.id)} == {"bob", "carl"}
