"""ScimConnector's group operations against the real scim2-server.

Mostly in process (tests/support/scim_asgi.py), where the app's side of the conversation is
recorded, so request counts and bodies are what the app received; the PUT-only dialect also
over real HTTP (the demo target, ``--no-patch``). Misbehaving peers are the tiny loopback
servers of conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from provisiond.connectors.scim import (
    MEMBERS_PER_REQUEST,
    REMOVALS_PER_REQUEST,
    REPLACE_ABOVE_REMOVALS,
    ScimConnector,
)
from provisiond.domain.apps import NoAuth, ScimConnectorSettings
from provisiond.engine.groups import GroupActual, reconcile_group
from provisiond.errors import RemoteConflict, RemoteNotFound, TerminalError
from tests.connectors.conftest import LOOPBACK, LoopbackServer, RecordedRequest, Responder
from tests.support.scim_asgi import Received, RecordingTarget, add_group, read_group

T = TypeVar("T")
Reply = tuple[int, dict[str, str], bytes]
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def run(target: RecordingTarget, scenario: Callable[[ScimConnector], Awaitable[T]]) -> T:
    """Run ``scenario`` with a connector to ``target`` in its own event loop, closing it after."""

    async def main() -> T:
        connector = target.connector()
        try:
            return await scenario(connector)
        finally:
            await connector.aclose()

    return asyncio.run(main())


def arrange(target: RecordingTarget, groups: list[tuple[str, list[str]]]) -> list[str]:
    """Create groups in the app behind the connector's back; their ids, in order."""

    async def main() -> list[str]:
        async with target.client() as app:
            return [await add_group(app, name, members) for name, members in groups]

    ids = asyncio.run(main())
    target.forget()
    return ids


def inspect(target: RecordingTarget, group_id: str) -> tuple[str, set[str]] | None:
    async def main() -> tuple[str, set[str]] | None:
        async with target.client() as app:
            return await read_group(app, group_id)

    return asyncio.run(main())


def member_values(request: Received) -> list[str]:
    """The member values one PATCH carries: added by value, removed by filter."""
    values: list[str] = []
    for operation in request.body["Operations"]:
        if operation["op"] == "add" and operation["path"] == "members":
            values += [member["value"] for member in operation["value"]]
        elif operation["op"] == "remove" and operation["path"].startswith("members["):
            values.append(operation["path"])
    return values


def patches(target: RecordingTarget) -> list[Received]:
    sent = target.requests()
    assert {r.method for r in sent} <= {"PATCH"}, [(r.method, r.path) for r in sent]
    return sent


# -- update_group: batches, renames, removals -------------------------------------------------


def test_twelve_hundred_additions_go_in_three_requests() -> None:
    target = RecordingTarget()
    [group_id] = arrange(target, [("Everyone", [])])
    added = [f"acct-{n:04d}" for n in range(1200)]

    sent = run(target, lambda c: c.update_group(group_id, add=added))

    assert sent == 3 == math.ceil(1200 / MEMBERS_PER_REQUEST)
    requests = patches(target)
    assert len(requests) == 3 and {r.path for r in requests} == {f"/Groups/{group_id}"}
    carried = [member_values(r) for r in requests]
    assert all(len(values) <= MEMBERS_PER_REQUEST for values in carried)
    assert sorted(v for values in carried for v in values) == added  # each exactly once
    assert inspect(target, group_id) == ("Everyone", set(added))


def test_a_rename_and_member_changes_go_in_one_request() -> None:
    target = RecordingTarget()
    before = [f"acct-{n}" for n in range(8)]
    [group_id] = arrange(target, [("eng", before)])

    sent = run(
        target,
        lambda c: c.update_group(
            group_id, display_name="Engineering", add=["new-1", "new-2"], remove=before[:3]
        ),
    )

    assert sent == 1
    [request] = patches(target)
    operations = request.body["Operations"]
    assert {"op": "replace", "path": "displayName", "value": "Engineering"} in operations
    assert inspect(target, group_id) == ("Engineering", {*before[3:], "new-1", "new-2"})


def test_a_rename_rides_on_the_first_of_the_batched_requests() -> None:
    """update_group's docstring: "in requests of at most MEMBERS_PER_REQUEST values; a rename
    rides on the first". 1,200 additions take three requests; the rename is no member value
    and must not cost a fourth."""
    target = RecordingTarget()
    [group_id] = arrange(target, [("eng", [])])
    added = [f"acct-{n:04d}" for n in range(1200)]

    sent = run(target, lambda c: c.update_group(group_id, display_name="Engineering", add=added))

    requests = patches(target)
    assert sent == len(requests)
    assert inspect(target, group_id) == ("Engineering", set(added))
    first = requests[0].body["Operations"]
    assert {"op": "replace", "path": "displayName", "value": "Engineering"} in first
    assert member_values(requests[0]), "the first request carries only the rename"
    assert sent == 3


def test_removals_and_additions_share_the_bound_per_request() -> None:
    target = RecordingTarget()
    before = [f"old-{n}" for n in range(10)]
    [group_id] = arrange(target, [("Support", before)])
    added = [f"acct-{n:04d}" for n in range(1100)]

    sent = run(target, lambda c: c.update_group(group_id, add=added, remove=before))

    requests = patches(target)
    assert sent == len(requests) >= math.ceil(1110 / MEMBERS_PER_REQUEST)
    assert all(len(member_values(r)) <= MEMBERS_PER_REQUEST for r in requests)
    assert inspect(target, group_id) == ("Support", set(added))


def test_removals_have_a_budget_of_their_own_per_request() -> None:
    """Each filtered removal is a pass over the group at the target (seconds per hundred on
    scim2-server at 5,000 members): at most REMOVALS_PER_REQUEST of them ride in one PATCH."""
    target = RecordingTarget()
    before = [f"acct-{n:03d}" for n in range(80)]
    [group_id] = arrange(target, [("Ops", before)])
    gone = before[:60]

    sent = run(target, lambda c: c.update_group(group_id, remove=gone, add=["new-1"]))

    requests = patches(target)
    removals = [
        sum(op["op"] == "remove" for op in r.body["Operations"]) for r in requests
    ]
    assert sent == len(requests) == math.ceil(60 / REMOVALS_PER_REQUEST)
    assert max(removals) == REMOVALS_PER_REQUEST and sum(removals) == 60
    assert inspect(target, group_id) == ("Ops", {*before[60:], "new-1"})


def test_many_removals_with_the_new_list_are_one_replace_of_the_members() -> None:
    target = RecordingTarget()
    before = [f"acct-{n:03d}" for n in range(400)]
    [group_id] = arrange(target, [("Big", before)])
    gone, added = before[: REPLACE_ABOVE_REMOVALS + 1], ["new-1", "new-2"]
    after = [*before[REPLACE_ABOVE_REMOVALS + 1 :], *added]

    sent = run(
        target,
        lambda c: c.update_group(
            group_id, display_name="Bigger", add=added, remove=gone, members=after
        ),
    )

    [request] = patches(target)
    assert sent == 1
    operations = request.body["Operations"]
    assert {"op": "replace", "path": "displayName", "value": "Bigger"} in operations
    assert [op["path"] for op in operations if op["op"] == "replace"] == ["displayName", "members"]
    assert inspect(target, group_id) == ("Bigger", set(after))


def test_members_are_removed_by_a_value_filter() -> None:
    target = RecordingTarget()
    # Ids a filter must quote (RFC 7644 §3.4.2.2): a double quote, a backslash, a space.
    odd = ['we"ird', "back\\slash", "with space"]
    before = [f"acct-{n:02d}" for n in range(20)] + odd
    [group_id] = arrange(target, [("Sales", before)])
    gone = before[:7] + odd

    sent = run(target, lambda c: c.update_group(group_id, remove=gone))

    assert sent == 1
    [request] = patches(target)
    assert request.body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]
    paths = [op["path"] for op in request.body["Operations"] if op["op"] == "remove"]
    assert len(paths) == len(gone)
    assert all(path.startswith("members[value eq ") for path in paths)
    assert inspect(target, group_id) == ("Sales", set(before[7:20]))


def test_nothing_to_change_sends_nothing() -> None:
    target = RecordingTarget()
    [group_id] = arrange(target, [("Quiet", ["a"])])
    assert run(target, lambda c: c.update_group(group_id)) == 0
    assert target.requests() == []


# -- find_group, with and without filter support ----------------------------------------------


def test_find_group_filters_by_display_name_case_insensitively() -> None:
    target = RecordingTarget()
    ids = arrange(target, [("Finance", ["a"]), ("Finance Team", ["b"]), ("Fin", [])])

    found = run(target, lambda c: c.find_group("FINANCE"))

    assert found is not None and found.remote_id == ids[0]
    assert (found.display_name, found.members) == ("Finance", frozenset({"a"}))
    [request] = target.requests()
    assert request.query["filter"] == ['displayName eq "FINANCE"']
    assert run(target, lambda c: c.find_group("Marketing")) is None


def test_find_group_without_filter_support_pages_through_every_group() -> None:
    target = RecordingTarget(filter=False, max_results=5)
    groups = [(f"Team {n:02d}", [f"m-{n}"]) for n in range(17)]
    ids = arrange(target, [*groups[:11], ("Wanted", ["w-1", "w-2"]), *groups[11:]])

    found = run(target, lambda c: c.find_group("wanted"))

    assert found is not None and found.remote_id == ids[11]
    assert found.members == frozenset({"w-1", "w-2"})
    pages = target.requests()
    assert all(r.method == "GET" and r.path == "/Groups" for r in pages)
    assert all("filter" not in r.query for r in pages)  # the app answers 501 to a filter
    assert all(r.query["count"] == ["5"] for r in pages)
    assert sorted(int(r.query["startIndex"][0]) for r in pages) == [1, 6, 11, 16]

    target.forget()
    assert run(target, lambda c: c.find_group("Nobody")) is None
    assert len(target.requests()) == 4  # every page read before concluding


@pytest.mark.parametrize(("filter_supported", "copies"), [(True, 2), (False, 2), (False, 3)])
def test_find_group_refuses_to_guess_between_groups_of_one_name(
    filter_supported: bool, copies: int
) -> None:
    target = RecordingTarget(filter=filter_supported, max_results=4)
    spellings = ["Admins", "admins", "ADMINS"][:copies]
    arrange(target, [(f"Other {n}", []) for n in range(5)] + [(s, ["x"]) for s in spellings])

    with pytest.raises(TerminalError, match=f"{copies} groups in the app are named 'Admins'"):
        run(target, lambda c: c.find_group("Admins"))


# -- gone groups ------------------------------------------------------------------------------


def test_changing_a_group_deleted_in_the_app_is_remote_not_found() -> None:
    target = RecordingTarget()
    [group_id] = arrange(target, [("Temp", ["a"])])
    run(target, lambda c: c.delete_group(group_id))
    assert inspect(target, group_id) is None

    with pytest.raises(RemoteNotFound, match=group_id) as patched:
        run(target, lambda c: c.update_group(group_id, add=["b"]))
    assert patched.value.http_status == 404 and not patched.value.retryable
    with pytest.raises(RemoteNotFound, match=group_id):
        run(target, lambda c: c.replace_group(group_id, "Temp", ["b"]))
    assert run(target, lambda c: c.get_group(group_id)) is None


def test_deleting_a_missing_group_is_fine() -> None:
    target = RecordingTarget()
    [group_id, kept] = arrange(target, [("Doomed", ["a"]), ("Kept", ["b"])])

    run(target, lambda c: c.delete_group(group_id))
    run(target, lambda c: c.delete_group(group_id))  # already gone: the goal is reached

    assert [(r.method, r.path) for r in target.requests()] == [
        ("DELETE", f"/Groups/{group_id}")
    ] * 2
    assert inspect(target, group_id) is None
    assert inspect(target, kept) == ("Kept", {"b"})


# -- the PUT-only dialect -----------------------------------------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, with a list of the requests that went out."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_put_only_app_gets_the_whole_group_replaced(
    no_patch_settings: ScimConnectorSettings,
) -> None:
    name = f"Ops-{uuid.uuid4().hex[:8]}"
    transport = RecordingTransport()

    async def scenario() -> None:
        connector = ScimConnector(no_patch_settings, transport=transport)
        try:
            assert not (await connector.quirks()).patch
            created = await connector.create_group(name, ["a", "b"])
            actual = GroupActual.of(created)
            transport.sent.clear()

            outcome = await reconcile_group(connector, name.upper(), ["b", "c"], actual)

            assert outcome.plan.replace and outcome.requests == 1
            assert transport.sent == [("PUT", f"/v2/Groups/{created.remote_id}")]
            found = await connector.get_group(created.remote_id)
            assert found is not None
            assert (found.display_name, found.members) == (name.upper(), frozenset({"b", "c"}))

            await connector.replace_group(created.remote_id, name, [])
            found = await connector.get_group(created.remote_id)
            assert found is not None and (found.display_name, found.members) == (name, frozenset())
            await connector.delete_group(created.remote_id)
        finally:
            await connector.aclose()

    asyncio.run(scenario())


# -- misbehaving peers ------------------------------------------------------------------------


def scim_reply(status: int, body: Any) -> Reply:
    return status, {"Content-Type": "application/scim+json"}, json.dumps(body).encode()


def tiny_app(groups: dict[str, Any], *, post_status: int = 201) -> Responder:
    """Discovery, GET /Groups/{id} with whatever body the test gives, and POST /Groups."""
    config = {
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": 50},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [],
    }

    def answer(request: RecordedRequest) -> Reply:
        route = request.path.split("?")[0].removeprefix("/v2")
        if route == "/ServiceProviderConfig":
            return scim_reply(200, config)
        if request.method == "POST" and route == "/Groups":
            detail = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": str(post_status),
                "scimType": "uniqueness",
                "detail": "displayName taken",
            }
            return scim_reply(post_status, detail)
        if route.startswith("/Groups/") and route.removeprefix("/Groups/") in groups:
            return scim_reply(200, groups[route.removeprefix("/Groups/")])
        return scim_reply(404, {"detail": "no such group"})

    return answer


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"schemas": [CORE_GROUP], "id": "g-1", "members": []}, "without a displayName"),
        ({"schemas": [CORE_GROUP], "displayName": "Ops"}, "without an id"),
        (
            {"schemas": [CORE_GROUP], "id": "g-1", "displayName": "Ops", "members": {"value": "a"}},
            "members that are not a list",
        ),
    ],
)
def test_a_malformed_group_is_a_terminal_error(
    serve: Callable[[Responder], LoopbackServer], body: dict[str, Any], complaint: str
) -> None:
    server = serve(tiny_app({"g-1": body}))
    settings = ScimConnectorSettings(base_url=f"{server.url}/v2", auth=NoAuth())

    async def scenario() -> None:
        connector = ScimConnector(settings, policy=LOOPBACK)
        try:
            with pytest.raises(TerminalError, match=complaint) as failed:
                await connector.get_group("g-1")
            assert not failed.value.retryable
        finally:
            await connector.aclose()

    asyncio.run(scenario())


def test_a_409_on_create_is_remote_conflict(serve: Callable[[Responder], LoopbackServer]) -> None:
    server = serve(tiny_app({}, post_status=409))
    settings = ScimConnectorSettings(base_url=f"{server.url}/v2", auth=NoAuth())

    async def scenario() -> None:
        connector = ScimConnector(settings, policy=LOOPBACK)
        try:
            with pytest.raises(RemoteConflict, match="displayName taken") as failed:
                await connector.create_group("Ops", ["a"])
            assert failed.value.http_status == 409
        finally:
            await connector.aclose()

    asyncio.run(scenario())
    posted = [r for r in server.requests if r.method == "POST"]
    assert len(posted) == 1 and json.loads(posted[0].body)["displayName"] == "Ops"
