"""Matching an app's accounts to directory users (pure): which import links which account.

Rules are tried in precedence order per account (Entra's "matching attributes", Okta's exact
match): the first rule for which the account has a value *and* some directory user has it
decides. One candidate is a match; two or more is a conflict, never a guess, and later rules
are not tried (they would only pick one of the candidates by a weaker attribute).

A user is linked to at most one account of an app: when two accounts match the same user, or
an account matches a user who already holds another linked account, every such claim is a
conflict. An account already linked (its remote id is on an ``accounts`` row) keeps its link.

userName and emails compare case-insensitively (RFC 7643 §4.1.1 and §4.1.2: caseExact false),
externalId exactly (§3.1: caseExact true). The result depends only on the data, not on the
order it was given in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from provisiond.domain.apps import MatchRule

CASE_INSENSITIVE = frozenset({"userName", "emails"})


class MatchState(StrEnum):
    LINKED = "linked"  # already linked before this matching
    MATCHED = "matched"  # exactly one candidate: linked, or pending an admin's confirmation
    CONFLICT = "conflict"
    UNMATCHED = "unmatched"


@dataclass(frozen=True)
class AppSideAccount:
    """What matching reads of an imported account."""

    remote_id: str
    user_name: str | None = None
    external_id: str | None = None
    primary_email: str | None = None

    def value(self, app_attribute: str) -> str | None:
        if app_attribute == "userName":
            return self.user_name
        if app_attribute == "externalId":
            return self.external_id
        return self.primary_email


@dataclass(frozen=True)
class Person:
    """A directory user as matching reads it: the values the rules name, as text."""

    user_id: str
    values: Mapping[str, str]


@dataclass(frozen=True)
class Match:
    remote_id: str
    state: MatchState
    user_id: str | None = None  # linked or matched
    rule: str | None = None  # "userName = login"
    candidates: tuple[str, ...] = ()  # a conflict's users, sorted


def describe(rule: MatchRule) -> str:
    return f"{rule.app_attribute} = {rule.user_attribute}"


def _key(app_attribute: str, value: str) -> str:
    return value.casefold() if app_attribute in CASE_INSENSITIVE else value


def match_accounts(
    accounts: Iterable[AppSideAccount],
    people: Iterable[Person],
    rules: Sequence[MatchRule],
    linked: Mapping[str, str],
) -> dict[str, Match]:
    """Each account's match, by remote id. ``linked`` maps remote id -> user id for accounts
    provisiond already links in the app (its ``accounts`` rows)."""
    everyone = list(people)
    # Lists, not sets: a value nearly always names one user, and 100,000 one-element sets
    # per rule cost three times the memory. A user has one value per attribute, so a list
    # never holds a user twice.
    indexes: list[dict[str, list[str]]] = []
    for rule in rules:
        index: dict[str, list[str]] = defaultdict(list)
        for person in everyone:
            value = person.values.get(rule.user_attribute)
            if value:
                index[_key(rule.app_attribute, value)].append(person.user_id)
        indexes.append(index)
    del everyone
    holders = set(linked.values())
    results: dict[str, Match] = {}
    claims: dict[str, list[str]] = defaultdict(list)  # user id -> remote ids matched to it
    for account in sorted(accounts, key=lambda a: a.remote_id):
        owner = linked.get(account.remote_id)
        if owner is not None:
            results[account.remote_id] = Match(
                account.remote_id, MatchState.LINKED, owner, "linked"
            )
            continue
        results[account.remote_id] = Match(account.remote_id, MatchState.UNMATCHED)
        for rule, index in zip(rules, indexes, strict=True):
            value = account.value(rule.app_attribute)
            found = index.get(_key(rule.app_attribute, value)) if value else None
            if not found:
                continue
            if len(found) > 1:
                results[account.remote_id] = Match(
                    account.remote_id,
                    MatchState.CONFLICT,
                    None,
                    describe(rule),
                    tuple(sorted(found)),
                )
            else:
                (user_id,) = found
                results[account.remote_id] = Match(
                    account.remote_id, MatchState.MATCHED, user_id, describe(rule)
                )
                claims[user_id].append(account.remote_id)
            break
    for user_id, remote_ids in claims.items():
        if len(remote_ids) > 1 or user_id in holders:
            for remote_id in remote_ids:
                by = results[remote_id].rule
                results[remote_id] = Match(remote_id, MatchState.CONFLICT, None, by, (user_id,))
    return results
