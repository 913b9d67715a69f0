"""App roles over real HTTP into the real scim2-server: priorities, moves, overrides, combine."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.e2e.conftest import (
    assign,
    eventually,
    person,
    remote_user,
    scim_app,
)
from tests.support.faulty import Fault, FaultyTarget


def suffix() -> str:
    return str(time.monotonic_ns() % 10**8)


def roles_in_app(scim: httpx.Client, login: str) -> list[str] | None:
    remote = remote_user(scim, login)
    if remote is None:
        return None
    return sorted(role["value"] for role in remote.get("roles") or [])


def enable(api: httpx.Client, app_id: str, **changes: Any) -> None:
    settings = api.get(f"/apps/{app_id}/provisioning").json()
    settings.pop("last_test", None)
    answer = api.put(f"/apps/{app_id}/provisioning", json={**settings, "enabled": True, **changes})
    assert answer.status_code == 200, answer.text
    run = answer.json()["initial_run"]
    if run is not None:
        eventually(lambda: api.get(f"/runs/{run['id']}").json()["status"] == "succeeded")


def define(api: httpx.Client, app_id: str, *names: str) -> dict[str, dict[str, Any]]:
    out = {}
    for name in names:
        created = api.post(f"/apps/{app_id}/roles", json={"name": name})
        assert created.status_code == 201, created.text
        out[name] = created.json()
    return out


def test_roles_follow_groups_priority_moves_overrides_and_combine(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"roles-{s}", target)).json()
    defined = define(api, app["id"], "admin", "editor", "viewer")
    assert defined["admin"]["expression"] == {"kind": "scim_role", "value": "admin"}
    eng = api.post("/groups", json={"name": f"Engineering-{s}"}).json()
    leads = api.post("/groups", json={"name": f"Leads-{s}"}).json()
    ann = api.post("/users", json=person(f"ann.{s}")).json()
    lea = api.post("/users", json=person(f"lea.{s}")).json()
    for group, user in ((eng, ann), (eng, lea), (leads, lea)):
        api.put(f"/groups/{group['id']}/users/{user['id']}").raise_for_status()
    by_eng = assign(api, app["id"], "group", eng["id"], role="editor", priority=2)
    assert by_eng["role"] == "editor" and by_eng["roles"] == ["editor"]
    assign(api, app["id"], "group", leads["id"], role=defined["admin"]["id"], priority=1)
    enable(api, app["id"])
    ann_login, lea_login = ann["profile"]["login"], lea["profile"]["login"]
    assert roles_in_app(scim, ann_login) == ["editor"]
    assert roles_in_app(scim, lea_login) == ["admin"]  # priority 1 beats 2

    # Moving Ann from Engineering to Leads makes her an admin in the app.
    api.delete(f"/groups/{eng['id']}/users/{ann['id']}").raise_for_status()
    api.put(f"/groups/{leads['id']}/users/{ann['id']}").raise_for_status()
    eventually(lambda: roles_in_app(scim, ann_login) == ["admin"])

    # A direct assignment overrides the groups.
    direct = assign(api, app["id"], "user", lea["id"], roles=["Viewer"])
    eventually(lambda: roles_in_app(scim, lea_login) == ["viewer"])

    # Combine mode: every role from every assignment.
    enable(api, app["id"], role_mode="combine")
    eventually(lambda: roles_in_app(scim, lea_login) == ["admin", "editor", "viewer"])
    eventually(lambda: roles_in_app(scim, ann_login) == ["admin"])

    # PATCH an assignment's roles and priority; the event says what changed.
    patched = api.patch(
        f"/apps/{app['id']}/assignments/{direct['id']}", json={"roles": ["editor", "viewer"]}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["roles"] == ["editor", "viewer"]
    enable(api, app["id"], role_mode="priority")
    eventually(lambda: roles_in_app(scim, lea_login) == ["editor", "viewer"])
    update = api.get("/logs", params={"action": "app.assignment.update", "app": app["id"]})
    assert update.json()["items"][0]["details"]["changes"]["roles"] == {
        "old": ["viewer"], "new": ["editor", "viewer"]}

    # Re-expressing a role reaches its holders: admins become "owner" in the app.
    api.patch(
        f"/apps/{app['id']}/roles/admin", json={"expression": {"kind": "scim_role", "value": "owner"}}
    ).raise_for_status()
    eventually(lambda: roles_in_app(scim, ann_login) == ["owner"])

    # Removing Ann's last assignment deprovisions her.
    api.delete(f"/groups/{leads['id']}/users/{ann['id']}").raise_for_status()
    eventually(lambda: (remote_user(scim, ann_login) or {}).get("active") is False)
    actions = {e["action"] for e in api.get("/logs", params={"app": app["id"]}).json()["items"]}
    assert {"app.role.create", "app.role.update", "app.assignment.create",
            "app.assignment.update"} <= actions


def test_entitlements_and_group_roles(api: httpx.Client, scim: httpx.Client, target: str) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"ent-{s}", target)).json()
    billing = {"kind": "entitlement", "value": "billing:read"}
    api.post(f"/apps/{app['id']}/roles", json={"name": "billing", "expression": billing})
    ops = {"kind": "group", "value": "Operators"}
    shown = api.post(f"/apps/{app['id']}/roles", json={"name": "ops", "expression": ops}).json()
    assert shown["expression"] == ops  # stored and shown; pushing groups comes later
    user = api.post("/users", json=person(f"eve.{s}")).json()
    granted = assign(api, app["id"], "user", user["id"], roles=["billing", "ops"])
    enable(api, app["id"])
    login = user["profile"]["login"]
    remote = remote_user(scim, login)
    assert remote is not None
    assert [e["value"] for e in remote.get("entitlements", [])] == ["billing:read"]
    assert not remote.get("roles")
    # Taking the entitlement away clears it in the app (provisiond owns the attribute).
    api.patch(f"/apps/{app['id']}/assignments/{granted['id']}", json={"roles": ["ops"]})
    eventually(lambda: not (remote_user(scim, login) or {}).get("entitlements"))
    assert (remote_user(scim, login) or {}).get("active") is True


def test_bad_role_input_is_refused_and_explained(api: httpx.Client, target: str) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"badroles-{s}", target)).json()
    define(api, app["id"], "admin", "editor")
    group = api.post("/groups", json={"name": f"g-{s}"}).json()
    other = api.post("/groups", json={"name": f"h-{s}"}).json()
    base = f"/apps/{app['id']}"

    unknown = api.post(f"{base}/assignments", json={
        "principal_type": "group", "principal_id": group["id"], "role": "superuser"})
    assert unknown.status_code == 422
    assert "defines no role 'superuser'" in unknown.json()["detail"]
    missing = api.post(f"{base}/assignments", json={
        "principal_type": "user", "principal_id": "no-such-user", "role": "admin"})
    assert missing.status_code == 422 and missing.json()["field"] == "principal_id"
    assert api.post(f"{base}/roles", json={"name": "ADMIN"}).status_code == 409
    assert api.post(f"{base}/roles", json={
        "name": "x", "expression": {"kind": "ldap", "value": "x"}}).status_code == 422

    granted = assign(api, app["id"], "group", group["id"], role="admin", priority=5)
    again = api.post(f"{base}/assignments", json={
        "principal_type": "group", "principal_id": group["id"]})
    assert again.status_code == 409
    tie = api.post(f"{base}/assignments", json={
        "principal_type": "group", "principal_id": other["id"], "priority": 5})
    assert tie.status_code == 409 and "priority 5" in tie.json()["detail"]
    second = assign(api, app["id"], "group", other["id"], priority=6)
    patch_tie = api.patch(f"{base}/assignments/{second['id']}", json={"priority": 5})
    assert patch_tie.status_code == 409

    refused = api.delete(f"{base}/roles/admin")
    assert refused.status_code == 409
    assert refused.json()["assignments"] == [
        {"id": granted["id"], "principal_type": "group", "principal_id": group["id"]}]
    editor = api.get(f"{base}/roles").json()["items"][1]
    assert api.delete(f"{base}/roles/{editor['id']}").status_code == 204
    api.delete(f"{base}/assignments/{granted['id']}").raise_for_status()
    assert api.delete(f"{base}/roles/admin").status_code == 204
    actions = [e["action"] for e in api.get("/logs", params={"app": app["id"]}).json()["items"]]
    assert actions.count("app.role.delete") == 2



def test_a_role_the_target_rejects_fails_visibly(
    api: httpx.Client, faulty: tuple[FaultyTarget, str]
) -> None:
    target, base = faulty
    s = suffix()
    app = api.post("/apps", json=scim_app(f"rejects-{s}", base)).json()
    define(api, app["id"], "editor", "superuser")
    user = api.post("/users", json=person(f"rex.{s}")).json()
    assignment = assign(api, app["id"], "user", user["id"], role="editor")
    enable(api, app["id"])
    message = "roles: 'superuser' is not a role of this application"
    target.inject(Fault("PATCH", 400, times=1, body={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": "400", "scimType": "invalidValue", "detail": message}))
    api.patch(
        f"/apps/{app['id']}/assignments/{assignment['id']}", json={"role": "superuser"}
    ).raise_for_status()
    dead = eventually(lambda: [t for t in api.get("/tasks", params={"status": "dead"}).json()["items"]
                               if t["user_id"] == user["id"]])
    assert message in dead[0]["last_error"]
    account = api.get(f"/apps/{app['id']}/accounts").json()["items"][0]
    assert message in account["last_error"]
    failure = api.get("/logs", params={"app": app["id"], "outcome": "failure"}).json()["items"]
    assert any(message in event["message"] for event in failure)
