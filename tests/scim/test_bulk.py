"""POST /scim/v2/Bulk (RFC 7644 §3.7): operations in order, bulkId references, failOnErrors,
the limits ServiceProviderConfig advertises; each operation an ordinary directory change."""

from __future__ import annotations

from typing import Any

import httpx

from provisiond.runtime import Runtime
from provisiond.store.tables import Group, User
from tests.scim.conftest import GROUP, patch_body, user_body
from tests.scim.test_protocol import assert_error

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"


def bulk(scim: httpx.Client, *operations: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    answer = scim.post("Bulk", json={"schemas": [BULK_REQUEST], "Operations": list(operations),
                                     **extra})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["schemas"] == [BULK_RESPONSE]
    results: list[dict[str, Any]] = body["Operations"]
    return results


def test_a_bulk_creates_a_user_and_a_group_that_references_it(scim: httpx.Client) -> None:
    # The group comes first and refers to the user after it: it waits for that POST (§3.7.2).
    group, user, renamed = bulk(
        scim,
        {"method": "POST", "path": "/Groups", "bulkId": "eng", "data": {
            "schemas": [GROUP], "displayName": "Bulk engineers",
            "members": [{"type": "User", "value": "bulkId:ada"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "ada", "data": user_body("ada.bulk")},
        {"method": "PATCH", "path": "/Groups/bulkId:eng", "data": patch_body(
            {"op": "replace", "path": "displayName", "value": "Bulk engineering"})},
    )
    assert (user["status"], user["bulkId"], group["status"]) == ("201", "ada", "201")
    assert renamed["status"] == "200" and "response" not in user
    read = scim.get(group["location"]).json()
    user_id = scim.get(user["location"]).json()["id"]
    assert read["displayName"] == "Bulk engineering"
    assert [m["value"] for m in read["members"]] == [user_id]
    assert read["meta"]["version"] == renamed["version"]
    # A version is the operation's If-Match: an older one is refused in place (412).
    (stale,) = bulk(scim, {"method": "PATCH", "path": f"/Groups/{read['id']}",
                           "version": user["version"], "data": patch_body(
                               {"op": "replace", "path": "displayName", "value": "never"})})
    assert stale["status"] == "412" and stale["response"]["status"] == "412"


def test_fail_on_errors_stops_the_run_and_each_error_is_in_place(
    scim: httpx.Client, runtime: Runtime
) -> None:
    taken = user_body("grace.bulk")
    assert scim.post("Users", json=taken).status_code == 201
    results = bulk(
        scim,
        {"method": "POST", "path": "/Users", "bulkId": "dup", "data": taken},
        {"method": "PATCH", "path": "/Users/bulkId:dup", "data": patch_body(
            {"op": "replace", "path": "title", "value": "never"})},
        {"method": "POST", "path": "/Users", "bulkId": "late", "data": user_body("late.bulk")},
        failOnErrors=2,
    )
    # The taken userName fails, the reference to it fails, and the third is not attempted.
    assert [r["status"] for r in results] == ["409", "400"]
    assert results[0]["response"]["scimType"] == "uniqueness"
    assert results[1]["response"]["scimType"] == "invalidValue"
    with runtime.db.session() as session:
        assert not session.query(User).filter(User.login == "late.bulk").count()


def test_circular_or_unknown_references_fail_and_change_nothing(
    scim: httpx.Client, runtime: Runtime
) -> None:
    results = bulk(
        scim,
        {"method": "POST", "path": "/Groups", "bulkId": "a", "data": {
            "schemas": [GROUP], "displayName": "Circular A", "members": [{"value": "bulkId:b"}]}},
        {"method": "POST", "path": "/Groups", "bulkId": "b", "data": {
            "schemas": [GROUP], "displayName": "Circular B", "members": [{"value": "bulkId:a"}]}},
        {"method": "PATCH", "path": "/Groups/bulkId:nobody", "data": patch_body(
            {"op": "replace", "path": "displayName", "value": "Circular C"})},
    )
    assert [r["status"] for r in results] == ["409", "409", "400"]
    assert results[2]["response"]["scimType"] == "invalidValue"
    with runtime.db.session() as session:
        assert not session.query(Group).filter(Group.name.like("Circular%")).count()


def test_malformed_or_oversize_bulks_are_refused_whole(
    scim: httpx.Client, runtime: Runtime
) -> None:
    create = {"method": "POST", "path": "/Users", "bulkId": "x", "data": user_body("no.bulk")}
    for operations in (
        [create, {"method": "GET", "path": "/Users"}],
        [create, {"method": "POST", "path": "/Users", "data": user_body("no.bulk2")}],
        [create, {"method": "DELETE", "path": "/Users"}],
        [create, {**create}],  # a bulkId twice
    ):
        answer = scim.post("Bulk", json={"schemas": [BULK_REQUEST], "Operations": operations})
        assert_error(answer, 400, "invalidSyntax")
    too_many = [{"method": "DELETE", "path": f"/Users/{i}"} for i in range(1001)]
    answer = scim.post("Bulk", json={"schemas": [BULK_REQUEST], "Operations": [create, *too_many]})
    assert_error(answer, 413, "tooLarge")
    huge = {**create, "data": user_body("no.bulk", title="x" * 1_100_000)}
    assert_error(scim.post("Bulk", json={"schemas": [BULK_REQUEST], "Operations": [huge]}),
                 413, "tooLarge")
    with runtime.db.session() as session:
        assert not session.query(User).filter(User.login.like("no.bulk%")).count()
