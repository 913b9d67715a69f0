"""ScimConnector against strict peers (tests/support/strict.py): each dialect, each known failure.

The three behaviours of issue 15, each reproduced by a strict peer first: an app that cannot
filter, a 501 to PATCH, and a 200 to a member removal that did not remove the member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from provisiond.connectors.scim import ScimConnector
from provisiond.domain.dialects import ScimProfile, shipped_profile
from provisiond.engine.planner import Change as _Change
from provisiond.errors import RemoteConflict, TerminalError
from tests.support.strict import StrictTarget, client, connector

T = TypeVar("T")
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def run(
    target: StrictTarget,
    scenario: Callable[[ScimConnector], Awaitable[T]],
    profile: ScimProfile | None = None,
) -> T:
    async def main() -> T:
        app = connector(target, profile)
        try:
            return await scenario(app)
        finally:
            await app.aclose()

    return asyncio.run(main())


def add_users(target: StrictTarget, *names: str) -> list[str]:
    """Accounts made in the app behind the connector's back (its own admins did); their ids."""

    async def main() -> list[str]:
        async with client(target) as app:
            ids = []
            for name in names:
                answer = await app.post("/Users", json={"schemas": [CORE_USER], "userName": name})
                assert answer.status_code == 201, answer.text
                ids.append(answer.json()["id"])
            return ids

    ids = asyncio.run(main())
    target.received.clear()
    return ids


def user_of(target: StrictTarget, remote_id: str) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with client(target) as app:
            answer = await app.get(f"/Users/{remote_id}")
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

    return asyncio.run(main())


# -- 1. an app that cannot filter -----------------------------------------------------------


def test_an_existing_account_is_found_in_an_app_that_cannot_filter() -> None:
    """RFC 7644 §3.4.2.2 lets an app announce ``filter.supported: false``: the account is found
    by listing every page (of an app that ignores ``count`` too), never by a filter it refuses."""
    target = StrictTarget(ScimProfile(filter="none", count_honoured=False), own_page_size=2)
    others = [f"user{n}" for n in range(7)]
    ids = add_users(target, *others, "Ada.Lovelace")

    found = run(target, lambda app: app.find_user("userName", "ada.lovelace"))

    assert found is not None and found.remote_id == ids[-1]  # userName is caseExact false
    assert not target.refused
    assert not any("filter" in seen.query for seen in target.received)
    assert run(target, lambda app: app.find_user("userName", "nobody")) is None


def test_without_filters_external_ids_match_exactly() -> None:
    """RFC 7643 §3.1: externalId is caseExact; a listing is matched with the RFC's rules."""
    target = StrictTarget(ScimProfile(filter="none"))

    async def scenario(app: ScimConnector) -> tuple[Any, Any]:
        created = await app.create_user({"userName": "grace", "externalId": "Abc-1"})
        return created, (
            await app.find_user("externalId", "abc-1"),
            await app.find_user("externalId", "Abc-1"),
        )

    created, (lower, exact) = run(target, scenario)
    assert lower is None and exact is not None and exact.remote_id == created.remote_id


# -- 2. 501 Not Implemented -----------------------------------------------------------------


def test_a_501_to_patch_is_permanent_and_the_update_falls_back_to_put() -> None:
    """RFC 7644 §3.12: 501 says the operation is not supported. The app's ServiceProviderConfig
    claims PATCH (``announce=False``) yet answers 501: the update goes as a PUT, at once."""
    target = StrictTarget(
        shipped_profile("rfc").model_copy(update={"patch": "none"}), announce=False
    )
    [remote_id] = add_users(target, "linus")

    async def scenario(app: ScimConnector) -> None:
        await app.update_user(
            remote_id,
            [_Change("displayName", None, "Linus T")],
            {"userName": "linus", "displayName": "Linus T"},
        )
        # Remembered: the next update goes straight to PUT.
        await app.update_user(
            remote_id,
            [_Change("title", None, "Kernel")],
            {"userName": "linus", "displayName": "Linus T", "title": "Kernel"},
        )

    run(target, scenario, ScimProfile())
    methods = [seen.method for seen in target.received if seen.path.startswith("/Users/")]
    assert methods == ["PATCH", "PUT", "PUT"]
    assert user_of(target, remote_id)["title"] == "Kernel"


def test_a_501_is_never_retried() -> None:
    target = StrictTarget(ScimProfile(filter="none"), announce=False)

    async def scenario(app: ScimConnector) -> None:
        await app._send("GET", "Users", params={"filter": 'userName eq "x"'})

    with pytest.raises(TerminalError) as caught:
        run(target, scenario)
    assert not caught.value.retryable and caught.value.http_status == 501


# -- 3. a 200 that did not do what was asked ------------------------------------------------


def test_a_member_removal_answered_200_with_the_member_still_there_is_a_failure() -> None:
    target = StrictTarget(stale_removals=True)
    ada, bob = add_users(target, "ada", "bob")

    async def scenario(app: ScimConnector) -> None:
        group = await app.create_group("Engineering", [])
        await app.update_group(group.remote_id, add=[ada, bob])
        await app.update_group(group.remote_id, remove=[bob])

    with pytest.raises(TerminalError, match="still holds"):
        run(target, scenario)


def test_a_member_added_answered_200_without_the_member_is_a_failure() -> None:
    """The same check for additions: the returned group must hold what was added."""
    target = StrictTarget()
    [ada] = add_users(target, "ada")

    async def scenario(app: ScimConnector) -> int:
        group = await app.create_group("Ops", [])
        return await app.update_group(group.remote_id, add=[ada])

    assert run(target, scenario) == 1


# -- the strict peers are strict --------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "spoken", "refusal"),
    [
        ("okta-compatible", "rfc", "without a path"),
        ("entra-compatible", "rfc", "expects 'Replace'"),
        ("rfc", "entra-compatible", "expects 'replace'"),
    ],
)
def test_a_strict_peer_refuses_another_dialect(app: str, spoken: str, refusal: str) -> None:
    """Proof the peers enforce their profile: the same update in another dialect is refused."""
    target = StrictTarget(shipped_profile(app))
    [remote_id] = add_users(target, "mallory")
    change = [_Change("displayName", None, "M")]

    with pytest.raises(TerminalError, match=refusal):
        run(
            target,
            lambda c: c.update_user(remote_id, change, {"userName": "mallory"}),
            shipped_profile(spoken),
        )
    run(target, lambda c: c.update_user(remote_id, change, {"userName": "mallory"}))
    assert user_of(target, remote_id)["displayName"] == "M"


# -- the other fields of a profile ----------------------------------------------------------


def group_patches(target: StrictTarget) -> list[Any]:
    return [
        seen.body
        for seen in target.received
        if seen.method == "PATCH" and seen.path.startswith("/Groups/")
    ]


@pytest.mark.parametrize("membership", ["replace", "put", "value-list"])
def test_each_membership_style_reaches_the_same_group(membership: str) -> None:
    profile = ScimProfile(membership=membership, members_per_request=2)  # type: ignore[arg-type]
    target = StrictTarget(profile)
    ada, bob, cyd = add_users(target, "ada", "bob", "cyd")

    async def scenario(app: ScimConnector) -> Any:
        group = await app.create_group("Ops", [])
        await app.update_group(group.remote_id, add=[ada, bob, cyd])
        await app.update_group(group.remote_id, remove=[ada, bob])
        return await app.get_group(group.remote_id)

    group = run(target, scenario)
    assert group.members == {cyd} and not target.refused
    patches = group_patches(target)
    if membership == "put":
        assert not patches and any(seen.method == "PUT" for seen in target.received)
    elif membership == "value-list":  # batches of two values, no filter anywhere
        removals = [o for body in patches for o in body["Operations"] if o["op"] == "remove"]
        assert [len(o["value"]) for o in removals] == [2]
        assert all("[" not in o["path"] for body in patches for o in body["Operations"])


def test_an_app_without_an_active_flag_loses_the_account_on_deactivation() -> None:
    target = StrictTarget()
    profile = ScimProfile(deactivate_by="delete")

    async def scenario(app: ScimConnector) -> Any:
        created = await app.create_user({"userName": "eve", "active": True})
        await app.update_user(created.remote_id, [_Change("active", True, False)], {})
        return await app.get_user(created.remote_id)

    assert run(target, scenario, profile) is None
    posted = next(seen.body for seen in target.received if seen.method == "POST")
    assert "active" not in posted


def test_a_404_to_patch_read_as_unsupported_falls_back_to_put() -> None:
    """Some apps answer 404 to a PATCH they lack; the profile says so, and the update is a PUT."""

    class NotFoundToPatch(StrictTarget):
        def _refusal(self, method: str, path: str, query: Any, body: Any) -> Any:
            return (404, None, "no such route") if method == "PATCH" else None

    target = NotFoundToPatch()
    [remote_id] = add_users(target, "kim")
    change = [_Change("title", None, "Boss")]
    run(
        target,
        lambda app: app.update_user(remote_id, change, {"userName": "kim", "title": "Boss"}),
        ScimProfile(patch_404="unsupported"),
    )
    assert user_of(target, remote_id)["title"] == "Boss"


def test_a_requests_per_hour_budget_paces_the_connector() -> None:
    app = connector(StrictTarget(), ScimProfile(requests_per_hour=7200))
    assert app._http.bucket is not None and app._http.bucket.rate == 2.0  # 7,200 an hour: 2 a second
    asyncio.run(app.aclose())


def test_an_app_that_cannot_filter_is_listed_once_for_many_lookups() -> None:
    """A full sync asks for every person: the app is listed once, not once per lookup; an
    account made behind our back is found after the create that collides with it."""
    target = StrictTarget(ScimProfile(filter="none", page_size=10))
    ids = add_users(target, *[f"user{n}" for n in range(30)])

    async def scenario(app: ScimConnector) -> tuple[list[Any], Any, Any]:
        found = [await app.find_user("userName", f"USER{n}") for n in range(30)]
        mine = await app.create_user({"userName": "mine"})
        assert await app.find_user("userName", "mine") == await app.get_user(mine.remote_id)
        async with client(target) as behind:
            made = await behind.post("/Users", json={"schemas": [CORE_USER], "userName": "late"})
        with pytest.raises(RemoteConflict):
            await app.create_user({"userName": "late"})
        return found, made.json()["id"], await app.find_user("userName", "late")

    found, late_id, late = run(target, scenario)
    assert [user.remote_id for user in found] == ids
    assert late is not None and late.remote_id == late_id
    listings = [seen for seen in target.received if seen.method == "GET" and seen.path == "/Users"]
    assert len(listings) <= 2 * 5  # twice: 31-32 accounts by 10, and the empty page after


def test_the_connection_test_says_what_the_apps_config_changes() -> None:
    """The admin picked the RFC's dialect; the app announces no PATCH and no filtering."""
    target = StrictTarget(ScimProfile(patch="none", filter="none"))
    report = run(target, lambda app: app.test_connection(), ScimProfile())
    assert report.ok and report.notes == [
        "this app does not support PATCH: updates will be sent as PUT",
        "this app cannot filter: accounts are found by listing every page (100 a page)",
    ]
    assert report.as_dict()["quirks"]["profile"]["patch"] == "none"
