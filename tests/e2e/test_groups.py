"""Nested groups and group rules, over real HTTP against the scim2-server target."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.api.test_bad_input import assert_problem
from tests.e2e.conftest import eventually, person, remote_user, scim_app


def enabled_app(api: httpx.Client, target: str, name: str) -> dict[str, Any]:
    app = api.post("/apps", json=scim_app(name, target)).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    api.put(
        f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}
    ).raise_for_status()
    return app


def assign(api: httpx.Client, app: dict[str, Any], group: dict[str, Any]) -> None:
    response = api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "group", "principal_id": group["id"]},
    )
    assert response.status_code == 201, response.text


def test_a_member_of_a_nested_group_reaches_the_parents_app(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    ada = api.post("/users", json=person(f"ada.{suffix}")).json()
    staff = api.post("/groups", json={"name": f"Staff {suffix}"}).json()
    engineering = api.post("/groups", json={"name": f"Engineering {suffix}"}).json()
    app = enabled_app(api, target, f"nested-{suffix}")
    assign(api, app, staff)

    assert api.put(f"/groups/{staff['id']}/groups/{engineering['id']}").status_code == 204
    assert api.put(f"/groups/{engineering['id']}/users/{ada['id']}").status_code == 204
    assert eventually(lambda: remote_user(scim, f"ada.{suffix}"))["active"] is True
    shown = api.get(f"/groups/{staff['id']}").json()
    assert shown["member_count"] == 1 and shown["rule"] is None
    assert shown["children"] == [{"id": engineering["id"], "name": engineering["name"]}]
    assert api.get(f"/groups/{staff['id']}/users").json()["items"] == []
    effective = api.get(f"/groups/{staff['id']}/users", params={"effective": "true"}).json()
    assert [u["id"] for u in effective["items"]] == [ada["id"]]

    # A cycle is refused, naming the path; nothing changes.
    body = assert_problem(api.put(f"/groups/{engineering['id']}/groups/{staff['id']}"), 409)
    assert f"{engineering['name']} → {staff['name']} → {engineering['name']}" in str(body["detail"])
    assert_problem(api.put(f"/groups/{staff['id']}/groups/{staff['id']}"), 409)
    assert_problem(api.put(f"/groups/{staff['id']}/groups/nope"), 404)

    # Unnesting deprovisions; nesting again brings the account back.
    assert api.delete(f"/groups/{staff['id']}/groups/{engineering['id']}").status_code == 204
    eventually(lambda: remote_user(scim, f"ada.{suffix}")["active"] is False)
    assert_problem(api.delete(f"/groups/{staff['id']}/groups/{engineering['id']}"), 404)
    assert api.put(f"/groups/{staff['id']}/groups/{engineering['id']}").status_code == 204
    eventually(lambda: remote_user(scim, f"ada.{suffix}")["active"] is True)

    # Deleting the child group removes the nesting and what it gave.
    assert api.delete(f"/groups/{engineering['id']}").status_code == 204
    eventually(lambda: remote_user(scim, f"ada.{suffix}")["active"] is False)
    assert api.get(f"/groups/{staff['id']}").json()["children"] == []


def test_a_rule_group_follows_profiles_and_provisioning_follows_it(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    ada = api.post("/users", json=person(f"ada.{suffix}", department="Sales")).json()
    bob = api.post("/users", json=person(f"bob.{suffix}", department="Support")).json()
    nobody = api.post("/users", json=person(f"eve.{suffix}")).json()  # no department

    body = assert_problem(
        api.post("/groups", json={"name": "Bad", "rule": 'user.department == "Sales" &&'}), 422
    )
    assert body["field"] == "rule" and body["position"] is not None
    assert api.get("/groups", params={"q": "Bad"}).json()["items"] == []

    sales = api.post(
        "/groups", json={"name": f"Sales {suffix}", "rule": 'user.department == "Sales"'}
    )
    assert sales.status_code == 201, sales.text
    group = sales.json()
    assert group["rule"] == 'user.department == "Sales"' and group["member_count"] == 1
    assert_problem(api.put(f"/groups/{group['id']}/users/{bob['id']}"), 409)
    assert_problem(api.delete(f"/groups/{group['id']}/users/{ada['id']}"), 409)

    failures = api.get("/logs", params={"action": "group.rule.evaluate"}).json()["items"]
    failed = [e for e in failures if e["outcome"] == "failure"]
    assert [e["user_id"] for e in failed] == [nobody["id"]]
    assert "department" in failed[0]["message"]

    app = enabled_app(api, target, f"rules-{suffix}")
    assign(api, app, group)
    eventually(lambda: remote_user(scim, f"ada.{suffix}"))
    assert remote_user(scim, f"bob.{suffix}") is None

    # A profile change moves people in and out, and provisioning follows.
    api.patch(f"/users/{bob['id']}", json={"profile": {"department": "Sales"}}).raise_for_status()
    api.patch(f"/users/{ada['id']}", json={"profile": {"department": "Support"}}).raise_for_status()
    eventually(lambda: remote_user(scim, f"bob.{suffix}"))
    eventually(lambda: remote_user(scim, f"ada.{suffix}")["active"] is False)
    members = api.get(f"/groups/{group['id']}/users").json()["items"]
    assert [u["id"] for u in members] == [bob["id"]]

    # Changing the rule re-evaluates everyone; removing it keeps the members, by hand now.
    changed = api.patch(f"/groups/{group['id']}", json={"rule": "has(user.department)"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["member_count"] == 2
    eventually(lambda: remote_user(scim, f"ada.{suffix}")["active"] is True)
    static = api.patch(f"/groups/{group['id']}", json={"rule": None}).json()
    assert static["rule"] is None and static["member_count"] == 2
    assert api.put(f"/groups/{group['id']}/users/{nobody['id']}").status_code == 204
