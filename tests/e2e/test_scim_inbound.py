"""Okta and Entra provisioning *into* provisiond over /scim/v2, replayed as they send it, with
the effect asserted in the scim2-server app behind provisiond: one engine, whoever changes
the directory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from provisiond.runtime import Runtime
from provisiond.services import scim_clients
from provisiond.services.context import SYSTEM
from tests.e2e.conftest import eventually, remote_user
from tests.e2e.test_groups import enabled_app

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def idp(server: str, runtime: Runtime, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A SCIM client of provisiond, as Okta or Entra is: its own token, its user agent."""
    name = "okta" if "okta" in request.node.name else "entra"
    with runtime.db.session() as session:
        token = scim_clients.create_client(session, SYSTEM, name)[0]
    agent = "Okta SCIM Client 1.0.0" if name == "okta" else "Azure Active Directory SCIM Client"
    with httpx.Client(
        base_url=f"{server}/scim/v2/", timeout=30,
        headers={"Authorization": f"Bearer {token}", "User-Agent": agent,
                 "Content-Type": "application/scim+json"},
    ) as client:
        yield client


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


# SQLite only: the SCIM layer's SQL runs on PostgreSQL in tests/services/test_scim_filters.py,
# and the deprovisioning path on PostgreSQL in the other e2e journeys.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_okta_provisions_through_provisiond_to_the_app(
    api: httpx.Client, idp: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = str(time.monotonic_ns())[-8:]
    login = f"ada.{s}@example.com"
    # Group push: Okta creates the group empty, then manages members by PATCH.
    group = ok(idp.post("Groups", json={"schemas": [GROUP], "displayName": f"Eng {s}",
                                        "members": []}), 201)
    app = enabled_app(api, target, f"okta-{s}")
    ok(api.post(f"/apps/{app['id']}/assignments",
                json={"principal_type": "group", "principal_id": group["id"]}), 201)

    # Create: the lookup first, then the POST with externalId, password and active.
    params = {"filter": f'userName eq "{login}"', "startIndex": 1, "count": 100}
    assert ok(idp.get("Users", params=params))["totalResults"] == 0
    user = ok(idp.post("Users", json={
        "schemas": [USER], "userName": login, "externalId": f"00u{s}", "password": "Okta-sent-1",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": True, "value": login, "type": "work"}],
        "displayName": "Ada Lovelace", "locale": "en-US", "active": True,
    }), 201)
    assert ok(idp.get("Users", params=params))["Resources"][0]["id"] == user["id"]
    ok(idp.patch(f"Groups/{group['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": user["id"], "display": login}]}]}),
        204)
    assert eventually(lambda: remote_user(scim, login))["active"] is True

    # Import: pages of startIndex/count.
    page = ok(idp.get("Users", params={"startIndex": 1, "count": 100}))
    assert page["totalResults"] >= 1 and user["id"] in {u["id"] for u in page["Resources"]}

    # Update: GET then a full PUT.
    current = ok(idp.get(f"Users/{user['id']}"))
    current["name"]["familyName"] = "King"
    ok(idp.put(f"Users/{user['id']}", json=current))
    eventually(lambda: (remote_user(scim, login) or {}).get("name", {}).get("familyName") == "King")

    # Deactivate: a replace without a path; the account is off at once.
    off = ok(idp.patch(f"Users/{user['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"active": False}}]}))
    assert off["active"] is False
    eventually(lambda: remote_user(scim, login)["active"] is False)  # type: ignore[index]

    # Membership removed by a value filter; the directory shows who did all of it.
    ok(idp.patch(f"Groups/{group['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}]}), 204)
    assert "members" not in ok(idp.get(f"Groups/{group['id']}"))
    events = api.get("/logs", params={"user": user["id"]}).json()["items"]
    assert {e["actor"] for e in events if e["action"].startswith("user.")} == {"scim:okta"}
    (okta,) = [c for c in ok(api.get("/scim-clients"))["items"] if c["name"] == "okta"]
    assert ok(api.get(f"/users/{user['id']}"))["source"] == okta["id"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_entra_provisions_through_provisiond_to_the_app(
    api: httpx.Client, idp: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = str(time.monotonic_ns())[-8:]
    login = f"grace.{s}@contoso.com"
    name = f"Staff {s}"
    assert ok(idp.get("Groups", params={"filter": f'displayName eq "{name}"'}))["Resources"] == []
    group = ok(idp.post("Groups", json={"schemas": [GROUP], "displayName": name,
                                        "externalId": f"g-{s}"}), 201)
    app = enabled_app(api, target, f"entra-{s}")
    ok(api.post(f"/apps/{app['id']}/assignments",
                json={"principal_type": "group", "principal_id": group["id"]}), 201)

    assert ok(idp.get("Users", params={"filter": f'userName eq "{login}"'}))["Resources"] == []
    user = ok(idp.post("Users", json={
        "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": f"e-{s}", "userName": login, "active": True,
        "emails": [{"primary": True, "type": "work", "value": login}],
        "name": {"formatted": "Grace Hopper", "familyName": "Hopper", "givenName": "Grace"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Navy"},
    }), 201)
    ok(idp.patch(f"Groups/{group['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "Add", "path": "members", "value": [{"value": user["id"]}]}]}), 204)
    assert eventually(lambda: remote_user(scim, login))["active"] is True

    # Entra's dialect: capitalised ops, a value-path with a sub-attribute, string booleans.
    ok(idp.patch(f"Users/{user['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": f"gh.{s}@contoso.com"},
        {"op": "Replace", "path": "displayName", "value": "Amazing Grace"},
    ]}))
    found = ok(idp.get("Users", params={
        "filter": f'externalId eq "e-{s}" and emails[type eq "work"].value eq "gh.{s}@contoso.com"'
    }))
    assert [u["id"] for u in found["Resources"]] == [user["id"]]
    ok(idp.patch(f"Users/{user['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "active", "value": "False"}]}))
    eventually(lambda: remote_user(scim, login)["active"] is False)  # type: ignore[index]

    ok(idp.patch(f"Groups/{group['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "Remove", "path": "members", "value": [{"value": user["id"]}]}]}), 204)
    assert "members" not in ok(idp.get(f"Groups/{group['id']}"))


# SQLite only, as above: a bulk's operations are the single requests' own code path.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_okta_bulk_provisions_and_deprovisions_through_provisiond(
    api: httpx.Client, idp: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = str(time.monotonic_ns())[-8:]
    login = f"alan.{s}@example.com"
    bulk = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
    created = ok(idp.post("Bulk", json={"schemas": [bulk], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "alan", "data": {
            "schemas": [USER], "userName": login, "active": True,
            "name": {"givenName": "Alan", "familyName": "Turing"},
            "emails": [{"primary": True, "value": login, "type": "work"}]}},
        {"method": "POST", "path": "/Groups", "bulkId": "bp", "data": {
            "schemas": [GROUP], "displayName": f"Bletchley {s}",
            "members": [{"type": "User", "value": "bulkId:alan"}]}},
    ]}))["Operations"]
    assert [op["status"] for op in created] == ["201", "201"]
    user, group = (ok(idp.get(op["location"])) for op in created)
    app = enabled_app(api, target, f"okta-bulk-{s}")
    ok(api.post(f"/apps/{app['id']}/assignments",
                json={"principal_type": "group", "principal_id": group["id"]}), 201)
    assert eventually(lambda: remote_user(scim, login))["active"] is True

    # A bulk PATCH active=false deactivates: the account is off downstream, as a single PATCH.
    (off,) = ok(idp.post("Bulk", json={"schemas": [bulk], "Operations": [
        {"method": "PATCH", "path": f"/Users/{user['id']}", "version": user["meta"]["version"],
         "data": {"schemas": [PATCH], "Operations": [
             {"op": "replace", "value": {"active": False}}]}}]}))["Operations"]
    assert off["status"] == "200"
    eventually(lambda: remote_user(scim, login)["active"] is False)  # type: ignore[index]
    events = api.get("/logs", params={"user": user["id"]}).json()["items"]
    assert {e["actor"] for e in events if e["action"].startswith("user.")} == {"scim:okta"}
