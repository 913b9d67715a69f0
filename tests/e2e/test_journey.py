"""The administrator's journey of the core issue, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import TARGET_TOKEN, eventually, person, remote_user, scim_app


def test_assign_update_deactivate_journey(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    # Directory: two engineers, one outsider, a group.
    ada = api.post("/users", json=person(f"ada.{suffix}", department="Engineering")).json()
    bob = api.post("/users", json=person(f"bob.{suffix}")).json()
    outsider = api.post("/users", json=person(f"eve.{suffix}")).json()
    engineering = api.post("/groups", json={"name": f"Engineering {suffix}"}).json()
    for user in (ada, bob):
        assert api.put(f"/groups/{engineering['id']}/users/{user['id']}").status_code == 204

    # An app, its connection tested, provisioning enabled.
    app = api.post("/apps", json=scim_app(f"wiki-{suffix}", target)).json()
    assert app["connector"]["auth"] == {"type": "bearer", "secret_set": True}
    assert TARGET_TOKEN not in httpx.Response(200, json=app).text
    test = api.post(f"/apps/{app['id']}/provisioning/test").json()
    assert test["ok"], test
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    enabled = api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True})
    assert enabled.status_code == 200, enabled.text

    # Assign the group: both engineers appear in the app, the outsider does not.
    assignment = api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "group", "principal_id": engineering["id"]},
    )
    assert assignment.status_code == 201, assignment.text
    remote_ada = eventually(lambda: remote_user(scim, f"ada.{suffix}"))
    assert (
        remote_ada["name"] == {"givenName": "Ada", "familyName": suffix.title()}
        or remote_ada["name"]["givenName"] == "Ada"
    )
    assert remote_ada["emails"] == [
        {"value": f"ada.{suffix}@example.com", "type": "work", "primary": True}
    ]
    assert remote_ada["externalId"] == ada["id"]
    assert remote_ada["active"] is True
    eventually(lambda: remote_user(scim, f"bob.{suffix}"))
    assert remote_user(scim, f"eve.{suffix}") is None

    # A profile change is pushed.
    api.patch(f"/users/{ada['id']}", json={"profile": {"lastName": "Lovelace"}}).raise_for_status()
    eventually(lambda: remote_user(scim, f"ada.{suffix}")["name"]["familyName"] == "Lovelace")

    # Deactivation reaches the app (how fast: bench/deprovision_latency.py, not a timed test).
    api.post(f"/users/{ada['id']}/lifecycle/deactivate").raise_for_status()
    eventually(lambda: remote_user(scim, f"ada.{suffix}")["active"] is False, timeout=60)

    # Every step is in the activity log (written just after the app answered).
    def actions() -> list[str]:
        items = api.get("/logs", params={"user": ada["id"], "limit": 100}).json()["items"]
        return [e["action"] for e in items]

    eventually(lambda: "app.user.deprovision" in actions(), timeout=60)
    for expected in (
        "user.lifecycle.create",
        "app.user.provision",
        "app.user.update",
        "user.lifecycle.deactivate",
        "app.user.deprovision",
    ):
        assert expected in actions(), (expected, actions())
    accounts = api.get(f"/apps/{app['id']}/accounts").json()["items"]
    by_login = {a["login"]: a for a in accounts}
    assert by_login[f"ada.{suffix}"]["status"] == "deactivated"
    assert by_login[f"bob.{suffix}"]["status"] == "active"
    assert outsider["id"] not in {a["user_id"] for a in accounts}
