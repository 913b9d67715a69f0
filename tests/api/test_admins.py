"""Console admins over HTTP: list, role, disable, delete, unlock, reset password; the last
super_admin is kept; a disabled admin's console session ends at once."""

from __future__ import annotations

import httpx

from tests.web.conftest import PASSWORD, MakeAdmin, csrf_of, sign_in

NEW_PASSWORD = "a brand new long password"


def admin_id(api: httpx.Client, username: str) -> str:
    items = api.get("/admins").json()["items"]
    return str(next(item["id"] for item in items if item["username"] == username))


def sign_in_answer(server: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=server, timeout=30) as client:
        page = client.get("/login")
        return client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        )


def test_the_last_active_super_admin_is_kept(api: httpx.Client, make_admin: MakeAdmin) -> None:
    make_admin("root")
    make_admin("helper", role="help_desk")
    root = admin_id(api, "root")
    for method, path, body in (
        ("PATCH", f"/admins/{root}", {"role": "read_only"}),
        ("POST", f"/admins/{root}/disable", None),
        ("DELETE", f"/admins/{root}", None),
    ):
        refused = api.request(method, path, json=body)
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "last active super_admin" in refused.json()["detail"]
    assert api.get(f"/admins/{root}").json()["role"] == "super_admin"

    # With a second super_admin, the first may step down.
    helper = admin_id(api, "helper")
    promoted = api.patch(f"/admins/{helper}", json={"role": "super_admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "super_admin"
    assert api.patch(f"/admins/{root}", json={"role": "read_only"}).json()["role"] == "read_only"
    events = api.get("/logs", params={"action": "user.account.privilege.update"}).json()["items"]
    assert {e["targets"]["admin"] for e in events} == {"root", "helper"}
    assert all(e["actor"] == "token:e2e" for e in events)


def test_disabling_ends_the_session_at_once_and_refuses_sign_in(
    server: str, api: httpx.Client, make_admin: MakeAdmin
) -> None:
    make_admin("root")
    make_admin("ops", role="read_only")
    with sign_in(server, "ops") as console:
        assert console.get("/tasks").status_code == 200
        disabled = api.post(f"/admins/{admin_id(api, 'ops')}/disable")
        assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
        ended = console.get("/tasks")
        assert ended.status_code == 303 and ended.headers["location"].startswith("/login")
    assert sign_in_answer(server, "ops", PASSWORD).status_code != 303
    assert api.post(f"/admins/{admin_id(api, 'ops')}/enable").json()["status"] == "active"
    assert sign_in_answer(server, "ops", PASSWORD).status_code == 303


def test_reset_password_unlock_and_delete(
    server: str, api: httpx.Client, make_admin: MakeAdmin
) -> None:
    make_admin("root")
    make_admin("ada", role="read_only")
    ada = admin_id(api, "ada")
    for _ in range(6):  # past the free failures: this address now waits before each attempt
        sign_in_answer(server, "ada", "wrong password!!")
    assert api.get(f"/admins/{ada}").json()["status"] == "throttled"
    assert api.post(f"/admins/{ada}/unlock").json()["status"] == "active"
    assert sign_in_answer(server, "ada", PASSWORD).status_code == 303

    with sign_in(server, "ada") as console:
        short = api.post(f"/admins/{ada}/password", json={"password": "short"})
        assert short.status_code == 422 and short.json()["field"] == "password"
        reset = api.post(f"/admins/{ada}/password", json={"password": NEW_PASSWORD})
        assert reset.status_code == 200, reset.text
        assert console.get("/tasks").status_code == 303  # its sessions ended
    assert sign_in_answer(server, "ada", PASSWORD).status_code != 303
    assert sign_in_answer(server, "ada", NEW_PASSWORD).status_code == 303

    assert api.delete(f"/admins/{ada}").status_code == 204
    assert api.get(f"/admins/{ada}").status_code == 404
    events = api.get("/logs", params={"action": "user.account"}).json()["items"]
    actions = {e["action"] for e in events if e["targets"].get("admin") == "ada"}
    assert {"user.account.unlock", "user.account.reset_password", "user.account.delete"} <= actions
    assert NEW_PASSWORD not in str(events) and PASSWORD not in str(events)


def test_a_non_super_admin_token_manages_no_admin(server: str, api: httpx.Client) -> None:
    secret = api.post("/tokens", json={"name": "desk", "role": "help_desk"}).json()["token"]
    with httpx.Client(
        base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {secret}"}
    ) as client:
        assert client.get("/admins").status_code == 403
        assert client.post("/admins", json={"username": "x", "password": NEW_PASSWORD}).status_code == 403
