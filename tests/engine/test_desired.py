"""The desired account of a directory user: who gets one, and what it holds."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.domain.directory import Profile, UserStatus
from provisiond.engine.desired import (
    DesiredAccount,
    DirectoryUser,
    default_mapping,
    desired_account,
)
from provisiond.expressions import EvaluationError

words = st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)
logins = st.builds(lambda user, host: f"{user}@{host}.example", words, words)
# What the directory accepts (domain.directory.Profile): login, email and both names are required.
profiles = st.fixed_dictionaries(
    {"login": logins, "email": logins, "firstName": words, "lastName": words},
    optional={
        "displayName": st.one_of(st.just(""), words),
        "department": words,
    },
)
users = st.builds(
    DirectoryUser, id=st.uuids().map(str), status=st.sampled_from(UserStatus), profile=profiles
)
assignments = st.lists(st.sampled_from(["direct", "engineering", "everyone"]), max_size=3)

ADA = DirectoryUser(
    id="u-ada",
    status=UserStatus.ACTIVE,
    profile=Profile(
        login="ada@example.com",
        email="ada@example.com",
        firstName="Ada",
        lastName="Lovelace",
        department="Analytical Engines",
    ).as_dict(),
)


def _with(
    user: DirectoryUser, status: UserStatus | None = None, **profile: object
) -> DirectoryUser:
    return DirectoryUser(user.id, status or user.status, {**user.profile, **profile})


# -- properties -------------------------------------------------------------------------------


@given(users, assignments)
def test_who_gets_an_account(user: DirectoryUser, assigned_by: list[str]) -> None:
    desired = desired_account(user, assigned_by)
    provisioned = bool(assigned_by) and user.status in (UserStatus.ACTIVE, UserStatus.SUSPENDED)
    assert (desired is not None) == provisioned
    if desired is not None:
        assert desired.active == (user.status is UserStatus.ACTIVE)
        assert desired.attributes["active"] is desired.active
        assert desired.assigned_by == tuple(sorted(assigned_by))


@given(users, assignments)
def test_desired_is_deterministic_and_independent_of_assignment_order(
    user: DirectoryUser, assigned_by: list[str]
) -> None:
    assert desired_account(user, assigned_by) == desired_account(user, reversed(assigned_by))


@given(users)
def test_the_default_mapping_is_a_function_of_the_profile(user: DirectoryUser) -> None:
    attributes = default_mapping(user)
    profile = user.profile
    assert attributes["userName"] == profile["login"]
    assert attributes["externalId"] == user.id
    assert attributes["name"].get("givenName") == profile.get("firstName")
    assert attributes["name"].get("familyName") == profile.get("lastName")
    assert None not in attributes["name"].values()
    if "displayName" in attributes:
        assert attributes["displayName"]
    if profile.get("email"):
        assert attributes["emails"] == [
            {"value": profile["email"], "type": "work", "primary": True}
        ]
    else:
        assert "emails" not in attributes
    assert set(attributes) <= {"userName", "externalId", "name", "displayName", "emails", "active"}


# -- examples ---------------------------------------------------------------------------------


def test_the_default_mapping() -> None:
    assert default_mapping(ADA) == {
        "userName": "ada@example.com",
        "externalId": "u-ada",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "displayName": "Ada Lovelace",
        "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
        "active": True,
    }


def test_user_name_comes_from_login_not_email() -> None:
    user = _with(ADA, login="ada", email="countess@example.com")
    attributes = default_mapping(user)
    assert attributes["userName"] == "ada"
    assert attributes["emails"][0]["value"] == "countess@example.com"


def test_an_explicit_display_name_wins() -> None:
    assert default_mapping(_with(ADA, displayName="The Countess"))["displayName"] == "The Countess"


def test_display_name_defaults_to_first_and_last() -> None:
    assert default_mapping(_with(ADA, displayName=""))["displayName"] == "Ada Lovelace"


def test_an_unset_attribute_mapped_directly_is_left_out() -> None:
    no_email = DirectoryUser("u-1", UserStatus.ACTIVE, {"login": "x1", "firstName": "A", "lastName": "B"})
    attributes = default_mapping(no_email)
    assert "emails" not in attributes
    assert attributes["name"] == {"givenName": "A", "familyName": "B"}


def test_an_expression_over_an_unset_attribute_fails_for_that_user_only() -> None:
    bare = DirectoryUser("u-1", UserStatus.ACTIVE, {"login": "x1"})
    with pytest.raises(EvaluationError, match=r"displayName: attribute 'user\.(first|last)Name' is not set"):
        default_mapping(bare)
    assert default_mapping(ADA)["displayName"] == "Ada Lovelace"


def test_custom_profile_attributes_are_not_mapped_by_default() -> None:
    assert "department" not in default_mapping(ADA)


def test_an_active_assigned_user_gets_an_active_account() -> None:
    assert desired_account(ADA, ["everyone", "direct"]) == DesiredAccount(
        attributes=default_mapping(ADA), assigned_by=("direct", "everyone")
    )


def test_a_suspended_user_keeps_a_deactivated_account() -> None:
    desired = desired_account(_with(ADA, UserStatus.SUSPENDED), ["everyone"])
    assert desired is not None
    assert desired.active is False
    assert desired.attributes["active"] is False
    assert desired.attributes["userName"] == "ada@example.com"


@pytest.mark.parametrize("status", [UserStatus.STAGED, UserStatus.DEPROVISIONED])
def test_staged_and_deprovisioned_users_get_no_account(status: UserStatus) -> None:
    assert desired_account(_with(ADA, status), ["everyone"]) is None


def test_an_unassigned_user_gets_no_account() -> None:
    assert desired_account(ADA, []) is None
    assert desired_account(ADA, iter(())) is None


def test_desired_active_defaults_to_true_without_the_attribute() -> None:
    assert DesiredAccount(attributes={"userName": "x"}).active is True
