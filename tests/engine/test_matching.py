"""Matching app accounts to directory users: precedence, case rules, conflicts, and properties."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from provisiond.domain.apps import MatchRule, default_match_rules
from provisiond.engine.matching import (
    AppSideAccount,
    Match,
    MatchState,
    Person,
    match_accounts,
)

RULES = default_match_rules()


def person(user_id: str, login: str, email: str | None = None) -> Person:
    values = {"id": user_id, "login": login}
    if email:
        values["email"] = email
    return Person(user_id, values)


def test_first_rule_that_finds_someone_decides_and_names_itself() -> None:
    people = [person("u1", "ada", "ada@x.org"), person("u2", "bob", "bob@x.org")]
    accounts = [
        AppSideAccount("r1", user_name="ADA", external_id="u2"),  # externalId first: bob
        AppSideAccount("r2", user_name="nobody", primary_email="ADA@X.ORG"),
    ]
    got = match_accounts(accounts, people, RULES, linked={})
    assert got["r1"] == Match("r1", MatchState.MATCHED, "u2", "externalId = id")
    # r2's e-mail names ada, whom r1 did not claim.
    assert got["r2"] == Match("r2", MatchState.MATCHED, "u1", "emails = email")


def test_external_id_is_case_exact_user_name_is_not() -> None:
    people = [person("U1", "ada")]
    got = match_accounts(
        [AppSideAccount("r1", user_name=None, external_id="u1")], people, RULES, linked={}
    )
    assert got["r1"].state is MatchState.UNMATCHED
    got = match_accounts([AppSideAccount("r1", user_name="Ada")], people, RULES, linked={})
    assert got["r1"].user_id == "U1"


def test_two_candidates_is_a_conflict_and_no_weaker_rule_guesses() -> None:
    people = [person("u1", "ada", "same@x.org"), person("u2", "ada2", "same@x.org")]
    rules = [MatchRule(app_attribute="emails", user_attribute="email"), *RULES]
    got = match_accounts(
        [AppSideAccount("r1", user_name="ada", primary_email="same@x.org")], people, rules, {}
    )
    assert got["r1"].state is MatchState.CONFLICT
    assert got["r1"].candidates == ("u1", "u2")


def test_two_accounts_for_one_user_are_both_conflicts() -> None:
    people = [person("u1", "ada")]
    accounts = [AppSideAccount("r1", user_name="ada"), AppSideAccount("r2", user_name="ADA")]
    got = match_accounts(accounts, people, RULES, linked={})
    assert {m.state for m in got.values()} == {MatchState.CONFLICT}


def test_a_linked_account_keeps_its_link_and_its_user_is_taken() -> None:
    people = [person("u1", "ada")]
    accounts = [AppSideAccount("r1", user_name="zed"), AppSideAccount("r2", user_name="ada")]
    got = match_accounts(accounts, people, RULES, linked={"r1": "u1"})
    assert got["r1"].state is MatchState.LINKED
    assert got["r2"] == Match("r2", MatchState.CONFLICT, None, "userName = login", ("u1",))


def test_accounts_without_user_name_fall_through_to_the_next_rule() -> None:
    people = [person("u1", "ada", "ada@x.org")]
    got = match_accounts([AppSideAccount("r1", primary_email="ada@x.org")], people, RULES, {})
    assert got["r1"].user_id == "u1"


_names = st.sampled_from(["ada", "Ada", "bob", "BOB", "cy", "dee", None])
_accounts = st.lists(
    st.builds(
        AppSideAccount,
        remote_id=st.text("abcdef", min_size=1, max_size=3),
        user_name=_names,
        external_id=st.sampled_from(["u1", "u2", "U3", None]),
        primary_email=st.sampled_from(["ada@x", "BOB@x", None]),
    ),
    max_size=12,
    unique_by=lambda a: a.remote_id,
)
_people = st.lists(
    st.builds(
        lambda i, login, email: person(f"u{i}", login, email),
        st.integers(1, 5),
        st.sampled_from(["ada", "bob", "cy", "Dee"]),
        st.sampled_from(["ada@x", "bob@x", None]),
    ),
    max_size=6,
    unique_by=lambda p: p.user_id,
)


@settings(max_examples=200, deadline=None)
@given(_accounts, _people, st.randoms(use_true_random=False), st.booleans())
def test_matching_is_deterministic_and_never_links_twice(
    accounts: list[AppSideAccount], people: list[Person], rnd: random.Random, prelink: bool
) -> None:
    linked = {accounts[0].remote_id: people[0].user_id} if prelink and accounts and people else {}
    got = match_accounts(accounts, people, RULES, linked)
    shuffled_accounts, shuffled_people = accounts[:], people[:]
    rnd.shuffle(shuffled_accounts)
    rnd.shuffle(shuffled_people)
    assert match_accounts(shuffled_accounts, shuffled_people, RULES, linked) == got
    assert set(got) == {a.remote_id for a in accounts}  # one answer per account
    owners = [m.user_id for m in got.values() if m.state in (MatchState.MATCHED, MatchState.LINKED)]
    assert len(owners) == len(set(owners))  # never two accounts to one user
    for match in got.values():
        assert (match.user_id is None) == (
            match.state in (MatchState.CONFLICT, MatchState.UNMATCHED)
        )
