"""The import plan (pure): it converges, and it never touches what is not the source's."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from provisiond.domain.directory import UserStatus
from provisiond.domain.ldap_import import (
    SOURCE_ATTRIBUTE,
    DirectoryUser,
    ImportPlan,
    LdapSource,
    SourceEntry,
    plan_import,
)

SOURCE = LdapSource(
    name="corp", url="ldap://ldap.example.com", bind_dn="cn=admin,dc=example,dc=org",
    bind_password="x", base_dn="ou=people,dc=example,dc=org", disabled_attribute="employeeType",
)
LOGINS = [f"user{i}" for i in range(6)]


def entry(login: str, title: str, disabled: bool) -> SourceEntry:
    attributes: dict[str, list[Any]] = {
        "uid": [login], "mail": [f"{login}@example.com"], "givenName": [login.title()],
        "sn": ["Person"], "title": [title],
    }
    if disabled:
        attributes["employeeType"] = ["disabled"]
    return SourceEntry(f"uid={login},ou=people,dc=example,dc=org", attributes)


def apply(
    plan: ImportPlan,
    users: dict[str, DirectoryUser],
    groups: dict[str, tuple[str, set[str]]],
) -> None:
    """What services.ldap_import does with a plan, on plain data."""
    for create in plan.creates:
        profile = create["profile"]
        status = UserStatus.STAGED if create["disabled"] else UserStatus.ACTIVE
        users[profile["login"].casefold()] = DirectoryUser(profile["login"], profile["login"], status.value, profile)
    by_id = {u.id: key for key, u in users.items()}
    for user_id, _, changes in plan.updates:
        key = by_id[user_id]
        merged = {k: v for k, v in {**users[key].profile, **changes}.items() if v is not None}
        users[key] = DirectoryUser(user_id, users[key].login, users[key].status, merged)
    for moves, status in ((plan.suspends, "suspended"), (plan.deactivates, "deprovisioned")):
        for user_id, _ in moves:
            key = by_id[user_id]
            users[key] = DirectoryUser(user_id, users[key].login, status, users[key].profile)
    for user_id, _, _ in plan.reactivates:
        key = by_id[user_id]
        users[key] = DirectoryUser(user_id, users[key].login, "active", users[key].profile)
    for name in plan.group_creates:
        groups[name.casefold()] = (name, set())
    for name, login in plan.member_adds:
        groups[name.casefold()][1].add(login.casefold())
    for name, login in plan.member_removes:
        groups[name.casefold()][1].discard(login.casefold())


people = st.dictionaries(
    st.sampled_from(LOGINS), st.tuples(st.sampled_from(["Engineer", "Lead"]), st.booleans()), max_size=6
)
memberships = st.dictionaries(st.sampled_from(["Eng", "Ops"]), st.sets(st.sampled_from(LOGINS)), max_size=2)
outsiders = st.dictionaries(
    st.sampled_from(LOGINS), st.sampled_from(["active", "suspended", "deprovisioned"]), max_size=3
)


@settings(max_examples=60, deadline=None)
@given(before=people, after=people, groups_before=memberships, groups_after=memberships, others=outsiders)
def test_an_import_converges_and_spares_other_users(
    before: dict[str, tuple[str, bool]],
    after: dict[str, tuple[str, bool]],
    groups_before: dict[str, set[str]],
    groups_after: dict[str, set[str]],
    others: dict[str, str],
) -> None:
    # Users not imported (no ldapSource), some with logins the source will bring.
    users = {
        login: DirectoryUser(f"other-{login}", login, status, {"login": login, "email": f"{login}@x.org",
                                                              "firstName": "O", "lastName": "T"})
        for login, status in others.items()
    }
    groups: dict[str, tuple[str, set[str]]] = {}
    for state, memberships_now in ((before, groups_before), (after, groups_after)):
        entries = [entry(login, title, disabled) for login, (title, disabled) in sorted(state.items())]
        dns = {login: e.dn for login, e in zip(sorted(state), entries, strict=True)}
        read_groups = {name: [dns[m] for m in sorted(members) if m in dns] for name, members in memberships_now.items()}
        untouched = {k: u for k, u in users.items() if u.profile.get(SOURCE_ATTRIBUTE) is None and k not in state}
        plan = plan_import(SOURCE, entries, read_groups, users, groups)
        assert not plan.errors
        apply(plan, users, groups)
        again = plan_import(SOURCE, entries, read_groups, users, groups)
        assert set(again.counts().values()) == {0}, again.describe()  # converged
        for key, user in untouched.items():
            assert users[key] == user  # not the source's: left alone
        for login, (_, disabled) in state.items():
            assert (users[login].status == "active") is not disabled
            assert users[login].profile[SOURCE_ATTRIBUTE] == "corp"
        imported = {k for k, u in users.items() if u.profile.get(SOURCE_ATTRIBUTE) == "corp"}
        for name, members in memberships_now.items():
            # Exact for the source's users (the others were added by hand and stay).
            assert groups[name.casefold()][1] & imported == {m for m in members if m in state}
