"""Effective-membership changes and the reconciles they cause.

A change to a group (a nested group added or removed, a rule re-evaluated, the group deleted)
can change the effective members of that group and of every group above it. ``watch`` reads
those memberships before the change; ``reconcile_changes`` reads them again after it and
re-plans exactly the users whose membership of some group changed, in the apps assigned to
that group, through ``runs.reconcile_users`` (so each app's safety limit applies).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from provisiond.services import pushes, reach, runs
from provisiond.services.context import Actor
from provisiond.store.tables import App

Memberships = dict[str, set[str]]  # group id -> effective member ids


@dataclass(frozen=True)
class Watched:
    members: Memberships
    apps: dict[str, set[str]]  # group id -> the apps assigned to it (read before a delete)


def watch(session: Session, group_ids: Iterable[str]) -> Watched:
    """The effective members of these groups and of every group above them, now."""
    groups = reach.ancestors_of(session, group_ids)
    return Watched(reach.effective_members(session, groups), reach.assigned_apps(session, groups))


def changed_users(before: Memberships, after: Memberships) -> dict[str, set[str]]:
    """group id -> the users who joined or left it."""
    changed = {g: before[g] ^ after.get(g, set()) for g in before}
    return {g: users for g, users in changed.items() if users}


def reconcile_changes(
    session: Session, actor: Actor, before: Watched, reason: str
) -> dict[str, set[str]]:
    """Reconcile whoever's effective membership changed since ``before``; returns the changes."""
    session.flush()
    changed = changed_users(before.members, reach.effective_members(session, before.members))
    per_app: dict[str, set[str]] = defaultdict(set)
    for group_id, users in changed.items():
        for app_id in before.apps.get(group_id, ()):
            per_app[app_id] |= users
    enabled = reach.enabled_app_ids(session)
    for app_id in sorted(per_app.keys() & enabled):
        app = session.get(App, app_id)
        if app is not None:
            runs.reconcile_users(session, actor, app, sorted(per_app[app_id]), reason=reason)
    pushes.groups_changed(session, actor, changed, reason)
    return changed
