"""Group rules: a group whose direct members are the users its CEL rule holds for.

The membership a rule computes is stored in ``group_members`` (``source = "rule"``), so every
query that asks who is in a group keeps working unchanged, and kept current two ways:

- a user is created, or their profile or status changes: every rule is evaluated for that user
  in the same transaction (``apply_to_user``);
- a rule is set or changed: it is evaluated for every user (``set_rule``, bulk).

A rule that fails for a user (typically: it reads an attribute the user has not set) means
"not a member", and is logged as ``group.rule.evaluate`` with outcome ``failure`` - once per
user per change. Changes are logged as ``group.user_membership.add|remove`` with the actor
``rule:<group>`` and re-plan the users concerned (services.membership).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from provisiond.expressions import CompiledExpression, EvaluationError, compile_expression
from provisiond.services import activity, membership, policies
from provisiond.services.context import Actor
from provisiond.store.tables import Group, GroupMember, User, utcnow

MANUAL, RULE = "manual", "rule"
MAX_FAILURE_EVENTS = 100  # per rule change; the summary event counts the rest
_NAMES = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHUNK = 900


def check_rule(session: Session, source: str) -> CompiledExpression:
    """Compile against the live profile schema; ExpressionError (422) with the position."""
    return compile_expression(
        source, expect="bool", field="rule", known_attributes=policies.custom_attributes(session)
    )


@lru_cache(maxsize=256)
def compiled_rule(source: str) -> CompiledExpression:
    # At run time every name in a saved rule is accepted as an attribute: one that no profile
    # has any more is unset for everyone (the rule fails for them), not a reason to stop.
    return compile_expression(
        source, expect="bool", field="rule", known_attributes=set(_NAMES.findall(source))
    )


def rule_actor(actor: Actor, group: Group) -> Actor:
    return Actor(f"rule:{group.name}"[:128], role=actor.role, correlation_id=actor.correlation_id)


def expression_input(user_id: str, status: str, profile: Mapping[str, Any]) -> dict[str, Any]:
    return {**profile, "id": user_id, "status": status}


@dataclass
class RuleOutcome:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: int = 0


def set_rule(session: Session, actor: Actor, group: Group, rule: str | None) -> RuleOutcome:
    """Make ``group`` dynamic with ``rule`` (checked first), or static again with ``None``.

    A static group keeps its current members, as manual ones; a rule group's members become
    exactly the users the rule holds for.
    """
    if rule is None:
        if group.rule is not None:
            group.rule = None
            session.execute(
                update(GroupMember).where(GroupMember.group_id == group.id).values(source=MANUAL)
            )
        return RuleOutcome()
    compiled = check_rule(session, rule)
    group.rule = rule
    session.flush()
    return _reevaluate(session, actor, group, compiled)


def _reevaluate(
    session: Session, actor: Actor, group: Group, compiled: CompiledExpression
) -> RuleOutcome:
    before = membership.watch(session, [group.id])
    current = set(
        session.scalars(select(GroupMember.user_id).where(GroupMember.group_id == group.id))
    )
    by_rule = rule_actor(actor, group)
    outcome, matches, logins = RuleOutcome(), set(), {}
    for user_id, login, status, profile in session.execute(
        select(User.id, User.login, User.status, User.profile)
    ):
        logins[user_id] = login
        try:
            if compiled.evaluate(expression_input(user_id, status, profile)):
                matches.add(user_id)
        except EvaluationError as exc:
            outcome.failed += 1
            if outcome.failed <= MAX_FAILURE_EVENTS:
                _record_failures(session, by_rule, user_id, login, [(group, exc.detail)])
    outcome.added, outcome.removed = sorted(matches - current), sorted(current - matches)
    for start in range(0, len(outcome.removed), _CHUNK):
        chunk = outcome.removed[start : start + _CHUNK]
        session.execute(
            delete(GroupMember).where(
                GroupMember.group_id == group.id, GroupMember.user_id.in_(chunk)
            )
        )
    session.execute(update(GroupMember).where(GroupMember.group_id == group.id).values(source=RULE))
    if outcome.added:
        now = utcnow()
        session.execute(
            insert(GroupMember),
            [
                {"group_id": group.id, "user_id": uid, "source": RULE, "added_at": now}
                for uid in outcome.added
            ],
        )
    for user_id in outcome.added:
        _record_change(session, by_rule, group, user_id, logins[user_id], added=True)
    for user_id in outcome.removed:
        _record_change(session, by_rule, group, user_id, logins.get(user_id, user_id), added=False)
    activity.record(
        session,
        by_rule,
        "group.rule.evaluate",
        f"evaluated the rule of {group.name}: {len(outcome.added)} added, "
        f"{len(outcome.removed)} removed, {outcome.failed} failed",
        targets={"group": group.name, "group_id": group.id},
        details={
            "rule": group.rule,
            "added": len(outcome.added),
            "removed": len(outcome.removed),
            "failed": outcome.failed,
            "members": len(matches),
        },
    )
    membership.reconcile_changes(session, by_rule, before, "group.rule")
    return outcome


def apply_to_user(session: Session, actor: Actor, user: User) -> set[str]:
    """Evaluate every rule for ``user`` and add or remove them; returns the groups changed.

    The rule groups are read ``FOR SHARE`` on PostgreSQL: a concurrent rule change waits for
    this transaction (and this one for it), so neither evaluates the other's stale input.
    """
    session.flush()
    groups = session.scalars(
        select(Group)
        .where(Group.rule.is_not(None))
        .order_by(Group.name_key)
        .with_for_update(read=True)
    ).all()
    if not groups:
        return set()
    current = set(
        session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user.id))
    )
    values = expression_input(user.id, user.status, user.profile)
    changed: set[str] = set()
    failures: list[tuple[Group, str]] = []
    for group in groups:
        assert group.rule is not None
        try:
            match = bool(compiled_rule(group.rule).evaluate(values))
        except EvaluationError as exc:
            match = False
            failures.append((group, exc.detail))
        if match == (group.id in current):
            continue
        changed.add(group.id)
        if match:
            session.add(GroupMember(group_id=group.id, user_id=user.id, source=RULE))
        else:
            membership_row = session.get(GroupMember, (group.id, user.id))
            if membership_row is not None:
                session.delete(membership_row)
        _record_change(session, rule_actor(actor, group), group, user.id, user.login, added=match)
    if failures:
        _record_failures(session, actor, user.id, user.login, failures)
    session.flush()
    return changed


def _record_change(
    session: Session, actor: Actor, group: Group, user_id: str, login: str, *, added: bool
) -> None:
    verb, where = ("add", "to") if added else ("remove", "from")
    activity.record(
        session,
        actor,
        f"group.user_membership.{verb}",
        f"{'added' if added else 'removed'} {login} {where} {group.name} by its rule",
        user_id=user_id,
        targets={"group": group.name, "group_id": group.id, "user": login},
    )


def _record_failures(
    session: Session, actor: Actor, user_id: str, login: str, failures: list[tuple[Group, str]]
) -> None:
    """One failure event for a user, naming every rule that failed for them."""
    names = ", ".join(group.name for group, _ in failures)
    activity.record(
        session,
        actor,
        "group.rule.evaluate",
        f"rule of {names} failed for {login}, who is not a member: {failures[0][1]}",
        outcome="failure",
        user_id=user_id,
        targets={"user": login, "groups": [group.name for group, _ in failures]},
        details={
            "failures": [
                {"group": group.name, "group_id": group.id, "error": message}
                for group, message in failures
            ]
        },
    )
