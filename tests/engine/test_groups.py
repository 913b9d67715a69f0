"""Pushed groups (engine/groups.py): the planner's properties, then reconcile against the real
scim2-server (in process, so that hypothesis can afford a few examples per run)."""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import NoAuth, ScimConnectorSettings
from provisiond.engine.groups import (
    GroupActual,
    GroupOutcome,
    GroupPlan,
    apply_plan,
    plan_group,
    reconcile_group,
)
from provisiond.errors import RemoteConflict
from tests.support.scim_asgi import BASE_URL, RecordingTarget, add_group, all_groups, read_group

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

# -- strategies -------------------------------------------------------------------------------

# Account ids from a small pool, so that desired and actual overlap often.
member_ids = st.text(alphabet="abcde", min_size=1, max_size=2)
member_sets = st.frozensets(member_ids, max_size=12)
# A directory group name: ASCII words (the quote and the backslash test the filter's quoting).
words = st.text(alphabet=string.ascii_letters + string.digits + '"\\-', min_size=1, max_size=6)
names = st.lists(words, min_size=1, max_size=2).map(" ".join)


def recased(name: str, how: str) -> str:
    return {"same": name, "swap": name.swapcase(), "upper": name.upper(), "lower": name.lower()}[
        how
    ]


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[str], GroupActual]:
    """A name, the desired members (as an iterable with repeats) and what the app holds."""
    name = draw(names)
    desired = draw(st.lists(member_ids, max_size=14))  # repeats: desired is any iterable
    how = draw(st.sampled_from(["same", "same", "swap", "upper", "other"]))
    actual_name = draw(names) if how == "other" else recased(name, how)
    actual = GroupActual("g-1", actual_name, draw(member_sets))
    return name, desired, actual


# -- the planner: properties ------------------------------------------------------------------


@given(case=cases(), patch=st.booleans())
def test_applying_the_plan_gives_exactly_the_desired_group(
    case: tuple[str, list[str], GroupActual], patch: bool
) -> None:
    name, desired, actual = case
    after = apply_plan(actual, plan_group(name, desired, actual, patch=patch))
    assert after == GroupActual(actual.remote_id, name, frozenset(desired))


@given(case=cases(), patch=st.booleans())
def test_planning_again_from_the_result_is_empty(
    case: tuple[str, list[str], GroupActual], patch: bool
) -> None:
    name, desired, actual = case
    after = apply_plan(actual, plan_group(name, desired, actual, patch=patch))
    again = plan_group(name, desired, after, patch=patch)
    assert again.empty and again == GroupPlan()


@given(case=cases(), patch=st.booleans())
def test_add_and_remove_are_disjoint_sorted_and_minimal(
    case: tuple[str, list[str], GroupActual], patch: bool
) -> None:
    name, desired, actual = case
    plan = plan_group(name, desired, actual, patch=patch)
    wanted = frozenset(desired)
    assert not set(plan.add) & set(plan.remove)
    assert list(plan.add) == sorted(set(plan.add))  # sorted, each once
    assert list(plan.remove) == sorted(set(plan.remove))
    assert set(plan.add) <= wanted - actual.members  # nobody added who is there already
    assert set(plan.remove) <= actual.members - wanted  # nobody removed who should stay
    # Minimal, and still enough: with the two inclusions above, this is equality.
    assert set(plan.add) >= wanted - actual.members
    assert set(plan.remove) >= actual.members - wanted
    assert (plan.rename is None) == (name == actual.name)
    assert plan.rename in (None, name)


@given(case=cases())
def test_without_patch_every_change_is_one_replace(
    case: tuple[str, list[str], GroupActual],
) -> None:
    name, desired, actual = case
    put = plan_group(name, desired, actual, patch=False)
    patch = plan_group(name, desired, actual, patch=True)
    assert put.replace == (not put.empty)
    assert not patch.replace
    # The diff itself does not depend on the method.
    assert (put.rename, put.add, put.remove) == (patch.rename, patch.add, patch.remove)
    assert put.describe()["method"] == ("PUT" if put.replace else "PATCH")


def test_a_case_only_difference_in_the_name_is_a_rename() -> None:
    actual = GroupActual("g-1", "engineering", frozenset({"a"}))
    assert plan_group("Engineering", ["a"], actual) == GroupPlan(rename="Engineering")
    assert plan_group("engineering", ["a", "a"], actual).empty


def test_describe_counts_the_changes() -> None:
    actual = GroupActual("g-1", "Eng", frozenset({"a", "b", "c"}))
    plan = plan_group("Eng", ["c", "d"], actual, patch=False)
    assert plan.describe() == {"rename": None, "added": 1, "removed": 2, "method": "PUT"}


# -- reconcile against the real scim2-server --------------------------------------------------

GONE_ID = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"  # an id the app never had (the group was deleted)
GHOST = "zz-ghost"  # an account id outside ``member_ids``: only ever in a stale record


@dataclass(frozen=True)
class Remote:
    """A random starting point: the app's group (if any), provisiond's record, and the call."""

    patch: bool
    name: str  # the directory group's name
    desired: frozenset[str]
    present: tuple[str, frozenset[str]] | None  # the app's group: its name and members
    record: str  # "none" (first push), "exact", "drifted" or "deleted"
    record_members: frozenset[str]
    verify: bool
    decoys: int  # other groups in the app, named so that a sloppy match would take them


@st.composite
def remotes(draw: st.DrawFn) -> Remote:
    name = draw(names)
    desired = draw(st.frozensets(member_ids, max_size=8))
    present: tuple[str, frozenset[str]] | None = None
    if draw(st.booleans()):
        how = draw(st.sampled_from(["same", "swap", "upper", "lower"]))
        # Some desired members already there, and strangers nobody should have.
        kept = draw(st.frozensets(st.sampled_from(sorted(desired)))) if desired else frozenset()
        strangers = draw(st.frozensets(member_ids.map(lambda m: f"x-{m}"), max_size=3))
        present = (recased(name, how), kept | strangers)
    if present is None:
        record = draw(st.sampled_from(["none", "deleted"]))
    else:
        record = draw(st.sampled_from(["none", "exact", "drifted"]))
    verify = draw(st.booleans())
    record_members = frozenset[str]()
    if record == "exact":
        assert present is not None
        record_members = present[1]
    elif record == "drifted":
        # What provisiond applied last; the app's admins changed the group since. Only a
        # read back can see it, so a drifted record comes with ``verify``.
        record_members = draw(member_sets.filter(lambda ms: present is None or ms != present[1]))
        verify = True
    elif record == "deleted":
        # Without ``verify``, only a change to send finds the group gone: the ghost is one.
        record_members = draw(member_sets) | ({GHOST} if not verify else frozenset())
    return Remote(
        patch=draw(st.booleans()),
        name=name,
        desired=desired,
        present=present,
        record=record,
        record_members=record_members,
        verify=verify,
        decoys=draw(st.integers(0, 2)),
    )


async def _reconcile_scenario(remote: Remote) -> None:
    target = RecordingTarget(patch=remote.patch)
    connector = target.connector()
    try:
        async with target.client() as app:
            decoys: dict[str, tuple[str, set[str]]] = {}
            for n in range(remote.decoys):
                decoy = (f"{remote.name} {n}", {f"decoy-{n}"})
                decoys[await add_group(app, decoy[0], sorted(decoy[1]))] = decoy
            present_id = None
            if remote.present is not None:
                present_id = await add_group(app, remote.present[0], sorted(remote.present[1]))
            actual = None
            if remote.record == "deleted":
                actual = GroupActual(GONE_ID, remote.name, remote.record_members)
            elif remote.record != "none":
                assert remote.present is not None and present_id is not None
                # As last applied: the name too (the directory group may be renamed since).
                actual = GroupActual(present_id, remote.present[0], remote.record_members)
            target.forget()

            outcome = await reconcile_group(
                connector, remote.name, remote.desired, actual, verify=remote.verify
            )

            sent = [r.method for r in target.requests()]
            assert outcome.requests == len(sent), sent
            assert ("PUT" if remote.patch else "PATCH") not in sent  # the app's dialect
            assert outcome.group is not None
            _check_flags(remote, outcome, present_id)
            # The app's group is exactly the directory's: name as written, the desired members.
            assert await read_group(app, outcome.group.remote_id) == (
                remote.name,
                set(remote.desired),
            )
            assert outcome.group == GroupActual(
                outcome.group.remote_id, remote.name, remote.desired
            )
            # No duplicate made, nothing else touched.
            after = await all_groups(app)
            named = [gid for gid, n in after if n.casefold() == remote.name.casefold()]
            assert named == [outcome.group.remote_id]
            assert len(after) == 1 + len(decoys)
            for decoy_id, decoy in decoys.items():
                assert await read_group(app, decoy_id) == decoy

            # Level-based: from the outcome's group, a second reconcile has nothing to send.
            target.forget()
            again = await reconcile_group(connector, remote.name, remote.desired, outcome.group)
            assert again.plan.empty and again.requests == 0
            assert target.received == []  # not even discovery: the dialect is known
            assert again.group == outcome.group
            assert not (again.created or again.linked or again.recreated)
            # Reading it back finds it as left: one GET, no drift, nothing to send.
            checked = await reconcile_group(
                connector, remote.name, remote.desired, outcome.group, verify=True
            )
            assert checked.plan.empty and checked.drift is None and checked.requests == 1
            assert [(r.method, r.path) for r in target.requests()] == [
                ("GET", f"/Groups/{outcome.group.remote_id}")
            ]
    finally:
        await connector.aclose()


def _check_flags(remote: Remote, outcome: GroupOutcome, present_id: str | None) -> None:
    assert outcome.created == (remote.present is None)
    assert outcome.linked == (remote.record == "none" and remote.present is not None)
    assert outcome.recreated == (remote.record == "deleted")
    if remote.present is not None:
        assert outcome.group is not None and outcome.group.remote_id == present_id
    if remote.record in ("exact", "drifted") and remote.verify:
        assert remote.present is not None
        differs = remote.present[1] != remote.record_members
        assert (outcome.drift is not None) == differs
        if outcome.drift is not None:
            assert outcome.drift == {
                "unexpected": len(remote.present[1] - remote.record_members),
                "missing": len(remote.record_members - remote.present[1]),
            }
    else:
        assert outcome.drift is None


@settings(max_examples=15, deadline=None)
@given(remote=remotes())
def test_reconcile_makes_the_apps_group_exactly_the_desired_one(remote: Remote) -> None:
    asyncio.run(_reconcile_scenario(remote))


def test_a_group_deleted_in_the_app_is_created_again_on_the_next_change() -> None:
    async def scenario() -> None:
        target = RecordingTarget()
        connector = target.connector()
        try:
            first = await reconcile_group(connector, "Ops", ["a", "b"], None)
            assert first.created and first.group is not None
            async with target.client() as app:
                assert (await app.delete(f"/Groups/{first.group.remote_id}")).status_code == 204
                target.forget()
                again = await reconcile_group(connector, "Ops", ["a", "b", "c"], first.group)
                assert again.recreated and again.created and again.group is not None
                assert again.group.remote_id != first.group.remote_id
                # The PATCH finds it gone; then find by name, create, add the members.
                assert [r.method for r in target.requests()] == ["PATCH", "GET", "POST", "PATCH"]
                assert again.requests == 4
                assert await read_group(app, again.group.remote_id) == ("Ops", {"a", "b", "c"})
        finally:
            await connector.aclose()

    asyncio.run(scenario())


def test_without_patch_the_group_is_replaced_by_one_put() -> None:
    async def scenario() -> None:
        target = RecordingTarget(patch=False)
        connector = target.connector()
        try:
            async with target.client() as app:
                group_id = await add_group(app, "ops", ["a", "stranger"])
                target.forget()
                outcome = await reconcile_group(connector, "Ops", ["a", "b"], None)
                assert outcome.linked and outcome.plan.replace and outcome.plan.rename == "Ops"
                assert [r.method for r in target.requests()] == ["GET", "PUT"]
                put = target.requests()[1]
                assert put.path == f"/Groups/{group_id}"
                assert put.body["displayName"] == "Ops"
                assert {m["value"] for m in put.body["members"]} == {"a", "b"}
                assert await read_group(app, group_id) == ("Ops", {"a", "b"})
        finally:
            await connector.aclose()

    asyncio.run(scenario())


class ConflictingCreates:
    """ASGI in front of the app: a POST /Groups is answered 409, as when a concurrent push won
    the race (``create``: the app does hold the group then) or an app refuses a name it will
    not show (``create`` off: nothing to find)."""

    def __init__(self, target: RecordingTarget, *, create: bool) -> None:
        self.target, self.create = target, create
        self.methods: list[str] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].endswith("/ServiceProviderConfig"):
            self.methods.append(scope["method"])
        if scope["type"] == "http" and (scope["method"], scope["path"]) == ("POST", "/v2/Groups"):
            if self.create:

                async def discard(message: MutableMapping[str, Any]) -> None:
                    pass

                await self.target(scope, receive, discard)
            error = {"schemas": [ERROR], "status": "409", "scimType": "uniqueness"}
            await send(
                {
                    "type": "http.response.start",
                    "status": 409,
                    "headers": [(b"content-type", b"application/scim+json")],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(error).encode()})
            return
        await self.target(scope, receive, send)

    def connector(self) -> ScimConnector:
        settings = ScimConnectorSettings(base_url=BASE_URL, auth=NoAuth())
        return ScimConnector(settings, transport=httpx.ASGITransport(app=self))


def test_a_group_created_meanwhile_is_linked_after_the_conflict() -> None:
    async def scenario() -> None:
        target = RecordingTarget()
        front = ConflictingCreates(target, create=True)
        connector = front.connector()
        try:
            outcome = await reconcile_group(connector, "Ops", ["a", "b"], None)
            assert outcome.linked and not outcome.created and outcome.group is not None
            assert front.methods == ["GET", "POST", "GET", "PATCH"]
            assert outcome.requests == len(front.methods)
            async with target.client() as app:
                assert [n for _, n in await all_groups(app)] == ["Ops"]
                assert await read_group(app, outcome.group.remote_id) == ("Ops", {"a", "b"})
        finally:
            await connector.aclose()

    asyncio.run(scenario())


def test_a_conflict_with_no_group_to_link_is_raised() -> None:
    async def scenario() -> None:
        front = ConflictingCreates(RecordingTarget(), create=False)
        connector = front.connector()
        try:
            with pytest.raises(RemoteConflict):
                await reconcile_group(connector, "Ops", ["a"], None)
            assert front.methods == ["GET", "POST", "GET"]
        finally:
            await connector.aclose()

    asyncio.run(scenario())
