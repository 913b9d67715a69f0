"""Reconciliation rules over real HTTP: adoption, PUT-only apps, drift, deprovision actions."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import TARGET_TOKEN, eventually, person, remote_user, scim_app
from tests.support.faulty import FaultyTarget
from tests.support.servers import serve_app


def unique(prefix: str) -> str:
    return f"{prefix}.{time.monotonic_ns() % 10**9}"


def enable(api: httpx.Client, app_id: str, **provisioning: object) -> None:
    settings = api.get(f"/apps/{app_id}/provisioning").json()
    response = api.put(
        f"/apps/{app_id}/provisioning", json={**settings, **provisioning, "enabled": True}
    )
    assert response.status_code == 200, response.text


def wait_run(api: httpx.Client, run_id: str) -> dict[str, object]:
    return eventually(lambda: (r := api.get(f"/runs/{run_id}").json())["status"] != "running" and r)


def test_an_existing_account_is_adopted_not_duplicated(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    login = unique("adopt")
    existing = scim.post(
        "Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": login,
            "active": True,
        },
    ).json()
    app = api.post("/apps", json=scim_app(unique("adopt").replace(".", "-"), target)).json()
    enable(api, app["id"])
    user = api.post("/users", json=person(login)).json()
    api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "user", "principal_id": user["id"]},
    )
    account = eventually(lambda: api.get(f"/apps/{app['id']}/accounts").json()["items"])[0]
    assert account["remote_id"] == existing["id"]
    remote = remote_user(scim, login)
    assert (
        remote["id"] == existing["id"] and remote["externalId"] == user["id"]
    )  # and brought up to date
    found = scim.get("Users", params={"filter": f'userName eq "{login}"'}).json()
    assert found["totalResults"] == 1


@pytest.fixture
def counting_target() -> Iterator[tuple[FaultyTarget, str]]:
    target = FaultyTarget(TARGET_TOKEN)
    with serve_app(target) as url:
        yield target, url + "/v2"


def test_a_change_outside_the_mapping_sends_nothing(
    api: httpx.Client, counting_target: tuple[FaultyTarget, str]
) -> None:
    target, base = counting_target
    app = api.post("/apps", json=scim_app("quiet", base)).json()
    enable(api, app["id"])
    user = api.post("/users", json=person("quiet.user")).json()
    api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "user", "principal_id": user["id"]},
    )
    eventually(lambda: api.get(f"/apps/{app['id']}/accounts").json()["items"])
    before = len(target.requests)
    api.patch(f"/users/{user['id']}", json={"profile": {"costCenter": "42"}}).raise_for_status()
    eventually(lambda: not api.get("/tasks", params={"status": "queued"}).json()["items"])
    time.sleep(0.3)
    assert len(target.requests) == before, target.requests[before:]


def test_put_only_apps_get_full_replacements(api: httpx.Client, target_put_only: str) -> None:
    app = api.post("/apps", json=scim_app("put-only", target_put_only)).json()
    enable(api, app["id"])
    user = api.post("/users", json=person("put.only")).json()
    api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "user", "principal_id": user["id"]},
    )
    with httpx.Client(
        base_url=target_put_only + "/", headers={"Authorization": f"Bearer {TARGET_TOKEN}"}
    ) as scim:
        eventually(lambda: remote_user(scim, "put.only"))
        api.patch(
            f"/users/{user['id']}", json={"profile": {"displayName": "P. Only"}}
        ).raise_for_status()
        eventually(lambda: remote_user(scim, "put.only").get("displayName") == "P. Only")
        api.post(f"/users/{user['id']}/lifecycle/suspend").raise_for_status()
        eventually(lambda: remote_user(scim, "put.only")["active"] is False)
        remote = remote_user(scim, "put.only")
        assert (
            remote["emails"][0]["value"] == "put.only@example.com"
        )  # PUT kept the managed attributes


def test_suspend_unsuspend_and_unassign(api: httpx.Client, scim: httpx.Client, target: str) -> None:
    login = unique("cycle")
    app = api.post("/apps", json=scim_app(login.replace(".", "-"), target)).json()
    enable(api, app["id"])
    user = api.post("/users", json=person(login)).json()
    group = api.post("/groups", json={"name": login}).json()
    api.put(f"/groups/{group['id']}/users/{user['id']}").raise_for_status()
    assignment = api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "group", "principal_id": group["id"]},
    ).json()
    eventually(lambda: remote_user(scim, login))
    api.post(f"/users/{user['id']}/lifecycle/suspend").raise_for_status()
    eventually(lambda: remote_user(scim, login)["active"] is False)
    api.post(f"/users/{user['id']}/lifecycle/unsuspend").raise_for_status()
    eventually(lambda: remote_user(scim, login)["active"] is True)
    # Removing the last assignment deprovisions (the default action: deactivate).
    api.delete(f"/apps/{app['id']}/assignments/{assignment['id']}").raise_for_status()
    eventually(lambda: remote_user(scim, login)["active"] is False)

    def newest() -> str:  # written just after the app answered, so looked for until it is
        items = api.get("/logs", params={"user": user["id"], "action": "app.user"}).json()["items"]
        return str(items[0]["action"])

    eventually(lambda: newest() == "app.user.deprovision")


def test_delete_action_removes_the_account(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    login = unique("gone")
    app = api.post("/apps", json=scim_app(login.replace(".", "-"), target)).json()
    enable(api, app["id"], deprovision_action="delete")
    user = api.post("/users", json=person(login)).json()
    api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "user", "principal_id": user["id"]},
    )
    eventually(lambda: remote_user(scim, login))
    api.post(f"/users/{user['id']}/lifecycle/deactivate").raise_for_status()
    eventually(lambda: remote_user(scim, login) is None)
    eventually(
        lambda: api.get(f"/apps/{app['id']}/accounts").json()["items"][0]["status"] == "deleted"
    )


def test_full_sync_repairs_drift(api: httpx.Client, scim: httpx.Client, target: str) -> None:
    login_a, login_b = unique("drift"), unique("vanish")
    app = api.post("/apps", json=scim_app(login_a.replace(".", "-"), target)).json()
    enable(api, app["id"])
    users = [api.post("/users", json=person(login)).json() for login in (login_a, login_b)]
    for user in users:
        api.post(
            f"/apps/{app['id']}/assignments",
            json={"principal_type": "user", "principal_id": user["id"]},
        )
    eventually(lambda: remote_user(scim, login_a) and remote_user(scim, login_b))
    # Someone edits one account in the app and deletes the other behind provisiond's back.
    drifted = remote_user(scim, login_a)
    scim.patch(
        f"Users/{drifted['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Mallory"}],
        },
    ).raise_for_status()
    scim.delete(f"Users/{remote_user(scim, login_b)['id']}").raise_for_status()

    run = api.post(f"/apps/{app['id']}/sync")
    assert run.status_code == 202
    finished = wait_run(api, run.json()["id"])
    assert finished["status"] == "succeeded"
    assert finished["counts"]["updated"] == 1 and finished["counts"]["created"] == 1, finished
    assert remote_user(scim, login_a)["displayName"] != "Mallory"
    assert remote_user(scim, login_b) is not None

    again = wait_run(api, api.post(f"/apps/{app['id']}/sync").json()["id"])
    assert again["counts"]["unchanged"] == 2, again  # a second sync finds nothing to do


def test_sync_of_a_disabled_app_is_refused(api: httpx.Client, target: str) -> None:
    app = api.post("/apps", json=scim_app("dormant", target)).json()
    response = api.post(f"/apps/{app['id']}/sync")
    assert response.status_code == 409 and "disabled" in response.json()["detail"]
