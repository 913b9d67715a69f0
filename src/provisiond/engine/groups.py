"""Pushed groups: what a group in an app must look like, and the requests that make it so.

The directory says who should be in the app's group (``desired``: account ids in the app);
provisiond's record says what it last applied (``GroupActual``), or, when asked to verify or
when it links to a group that already exists, the app itself says what the group holds.
``plan_group`` is the pure diff; ``reconcile_group`` sends it through a connector: PATCH
add/remove in a few large requests where the app has PATCH, one PUT of the whole group where
it has not. Members nobody should have (a stranger found in a linked group) are removed, so
the app's group ends exactly equal to the directory's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from provisiond.connectors.base import Connector, RemoteGroup
from provisiond.engine.executor import Result
from provisiond.errors import RemoteConflict, RemoteNotFound


@dataclass(frozen=True)
class GroupActual:
    """A group as provisiond knows it in the app."""

    remote_id: str
    name: str
    members: frozenset[str]

    @classmethod
    def of(cls, remote: RemoteGroup) -> GroupActual:
        return cls(remote.remote_id, remote.display_name, remote.members)


@dataclass(frozen=True)
class GroupPlan:
    """The changes that turn ``actual`` into the desired group; ``replace`` means one PUT."""

    rename: str | None = None
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    replace: bool = False

    @property
    def empty(self) -> bool:
        return self.rename is None and not self.add and not self.remove

    def describe(self) -> dict[str, object]:
        return {
            "rename": self.rename,
            "added": len(self.add),
            "removed": len(self.remove),
            "method": "PUT" if self.replace else "PATCH",
        }


def plan_group(
    name: str, desired: Iterable[str], actual: GroupActual, *, patch: bool = True
) -> GroupPlan:
    """The diff between the group the app holds and the one the directory wants. Pure.

    Names compare exactly: a case-only rename in the directory is a rename in the app too.
    """
    wanted = frozenset(desired)
    add = tuple(sorted(wanted - actual.members))
    remove = tuple(sorted(actual.members - wanted))
    rename = name if name != actual.name else None
    changed = bool(add or remove or rename is not None)
    return GroupPlan(rename, add, remove, replace=changed and not patch)


def apply_plan(actual: GroupActual, plan: GroupPlan) -> GroupActual:
    """The group after ``plan`` (the reference the property tests check the planner with)."""
    members = (actual.members - frozenset(plan.remove)) | frozenset(plan.add)
    return GroupActual(actual.remote_id, plan.rename or actual.name, members)


@dataclass
class GroupOutcome:
    """What a reconcile of one pushed group did: the trace, the group after, request counts."""

    result: Result = field(default_factory=Result)
    group: GroupActual | None = None
    created: bool = False
    linked: bool = False
    recreated: bool = False
    plan: GroupPlan = field(default_factory=GroupPlan)
    drift: dict[str, int] | None = None  # found in the app, against what was last applied
    requests: int = 0


async def reconcile_group(
    connector: Connector,
    name: str,
    desired: Iterable[str],
    actual: GroupActual | None,
    *,
    verify: bool = False,
) -> GroupOutcome:
    """Make the app's group ``name`` hold exactly ``desired``.

    Without a record (first push), an existing group of the same name is linked rather than
    duplicated, then corrected; ``verify`` reads the group back instead of trusting the record
    (a full sync, an admin's "sync now"); a group deleted in the app is created again.
    """
    wanted = sorted(set(desired))
    out = GroupOutcome()
    step = out.result.step
    if actual is not None and verify:
        remote = await connector.get_group(actual.remote_id)
        out.requests += 1
        if remote is None:
            step("read", f"group {actual.remote_id} no longer exists in the app")
            out.recreated, actual = True, None
        else:
            found = GroupActual.of(remote)
            if found.members != actual.members:
                out.drift = {
                    "unexpected": len(found.members - actual.members),
                    "missing": len(actual.members - found.members),
                }
            step("read", f"group {found.remote_id} holds {len(found.members)} members")
            actual = found
    if actual is None:
        existing = await connector.find_group(name)
        out.requests += 1
        if existing is None:
            try:
                return await _create(connector, name, wanted, out)
            except RemoteConflict:  # created meanwhile, or found only by its name's clash
                existing = await connector.find_group(name)
                out.requests += 2
                if existing is None:
                    raise
        actual = GroupActual.of(existing)
        out.linked = True
        step(
            "link",
            f"linked the app's existing group {existing.display_name} "
            f"({len(existing.members)} members)",
            id=existing.remote_id,
        )
    patch = (await connector.quirks()).patch
    plan = plan_group(name, wanted, actual, patch=patch)
    out.plan = plan
    if plan.empty:
        step("compare", "the app's group already matches")
    else:
        try:
            out.requests += await _send(connector, actual, name, wanted, plan)
        except RemoteNotFound:
            if verify or out.linked:
                raise
            # Deleted in the app since the last push: read nothing more, push it afresh.
            step("read", f"group {actual.remote_id} no longer exists in the app")
            again = await reconcile_group(connector, name, wanted, None)
            again.recreated, again.requests = True, again.requests + out.requests + 1
            again.result.trace[:0] = out.result.trace
            return again
        step("update", _summary(plan), **plan.describe())
    out.group = GroupActual(actual.remote_id, name, frozenset(wanted))
    return out


async def _create(
    connector: Connector, name: str, wanted: list[str], out: GroupOutcome
) -> GroupOutcome:
    # As Okta does: the group first, then its members by PATCH in large batches (one POST of
    # thousands of members is what targets time out on); without PATCH, all in the POST.
    patch = (await connector.quirks()).patch
    created = await connector.create_group(name, [] if patch else wanted)
    out.requests += 1
    if patch and wanted:
        out.requests += await connector.update_group(created.remote_id, add=wanted)
    out.created = True
    out.plan = GroupPlan(add=tuple(wanted))
    out.group = GroupActual(created.remote_id, name, frozenset(wanted))
    out.result.step(
        "create", f"created group {name} with {len(wanted)} members", id=created.remote_id
    )
    return out


async def _send(
    connector: Connector, actual: GroupActual, name: str, wanted: list[str], plan: GroupPlan
) -> int:
    if plan.replace:
        await connector.replace_group(actual.remote_id, name, wanted)
        return 1
    return await connector.update_group(
        actual.remote_id, display_name=plan.rename, add=plan.add, remove=plan.remove,
        members=wanted,
    )


def _summary(plan: GroupPlan) -> str:
    parts = []
    if plan.rename is not None:
        parts.append(f"renamed to {plan.rename}")
    if plan.add:
        parts.append(f"added {len(plan.add)}")
    if plan.remove:
        parts.append(f"removed {len(plan.remove)}")
    how = "PUT of the whole group" if plan.replace else "PATCH"
    return f"{', '.join(parts)} ({how})"
