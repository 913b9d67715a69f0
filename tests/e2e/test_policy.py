"""Provisioning policies over real HTTP: checks on save, dry runs, scope changes, safety holds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TARGET_TOKEN, eventually, person, remote_user, scim_app
from tests.support.faulty import FaultyTarget
from tests.support.servers import serve_app

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def counted() -> Iterator[tuple[FaultyTarget, str]]:
    target = FaultyTarget(TARGET_TOKEN)
    with serve_app(target) as url:
        yield target, url + "/v2"


def setup_app(api: httpx.Client, base: str, people: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An enabled app with a group holding ``people`` (login -> department)."""
    suffix = str(time.monotonic_ns() % 10**8)
    app = api.post("/apps", json=scim_app(f"policy-{suffix}", base)).json()
    group = api.post("/groups", json={"name": f"everyone-{suffix}"}).json()
    users = {}
    for login, department in people.items():
        user = api.post("/users", json=person(f"{login}.{suffix}", department=department, title="Engineer")).json()
        api.put(f"/groups/{group['id']}/users/{user['id']}").raise_for_status()
        users[login] = user
    api.post(f"/apps/{app['id']}/assignments", json={"principal_type": "group", "principal_id": group["id"]})
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    run = api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}).json()["initial_run"]
    eventually(lambda: api.get(f"/runs/{run['id']}").json()["status"] == "succeeded")
    return app, users


def policy_with(api: httpx.Client, app_id: str, **changes: Any) -> dict[str, Any]:
    current = api.get(f"/apps/{app_id}/policy").json()
    current.pop("version")
    return {**current, **changes}


def wait_run(api: httpx.Client, run_id: str) -> dict[str, Any]:
    return eventually(lambda: (r := api.get(f"/runs/{run_id}").json())["status"] not in ("running",) and r)


def test_the_default_policy_is_shown_as_version_0(api: httpx.Client, target: str) -> None:
    app = api.post("/apps", json=scim_app("defaults", target)).json()
    policy = api.get(f"/apps/{app['id']}/policy").json()
    assert policy["version"] == 0
    assert policy["scope"] is None
    assert policy["mappings"]["userName"] == "user.login"
    assert policy["deprovisioning"] == {"action": "inherit", "delete_after_days": None}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"scope": 'user.department == "Eng'}, "scope", "1:"),
        ({"scope": "user.departmnt == 'Eng'"}, "scope", "did you mean"),
        ({"scope": "user.firstName"}, "scope", "bool"),
        ({"scope": "user.title == 'x' && user.firstName + 1 == 'y'"}, "scope", "string + int"),
        ({"mappings": {"userName": "user.login", "displayName": "user.firstName + 1"}}, "mappings.displayName", ""),
        ({"mappings": {"userName": "user.login", "title": "1 == 1"}}, "mappings.title", "string"),
        ({"mappings": {"userName": "user.login", "groups": "user.login"}}, "mappings.groups", "readOnly"),
        ({"mappings": {"userName": "user.login", "favouriteColour": "user.login"}}, "mappings.favouriteColour", "not an attribute"),
        ({"mappings": {"userName": "user.login", "active": "true"}}, "mappings.active", "status"),
        ({"mappings": {"displayName": "user.login"}}, "mappings", "userName"),
        ({"limits": {"max_deprovisions": 0}}, "limits.max_deprovisions", ""),
        ({"limits": {"max_deprovision_percent": 120}}, "limits.max_deprovision_percent", ""),
    ],
)
def test_bad_policies_are_refused_with_the_field(
    api: httpx.Client, target: str, change: dict[str, Any], field: str, words: str
) -> None:
    app = api.post("/apps", json=scim_app(f"bad-{abs(hash(str(change))) % 10**6}", target)).json()
    response = api.put(f"/apps/{app['id']}/policy", json=policy_with(api, app["id"], **change))
    assert response.status_code == 422, response.text
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert body["field"].startswith(field), body
    assert words.lower() in body["detail"].lower(), body
    assert api.get(f"/apps/{app['id']}/policy").json()["version"] == 0  # nothing saved


def test_syntax_errors_carry_their_position(api: httpx.Client, target: str) -> None:
    app = api.post("/apps", json=scim_app("positions", target)).json()
    body = api.put(f"/apps/{app['id']}/policy", json=policy_with(api, app["id"], scope="user.login == (")).json()
    assert body["field"] == "scope"
    assert body["line"] == 1
    assert isinstance(body["column"], int)


def test_preview_shows_the_exact_changes_and_changes_nothing(
    api: httpx.Client, counted: tuple[FaultyTarget, str]
) -> None:
    target, base = counted
    app, _ = setup_app(api, base, {"ada": "Engineering", "bob": "Support", "eve": "Sales"})
    requests_before = len(target.requests)
    tasks_before = api.get("/tasks").json()["items"]
    draft = policy_with(
        api, app["id"],
        scope='user.department in ["Engineering", "Support"]',
        mappings={
            "userName": "user.login",
            "displayName": 'user.firstName + " " + user.lastName + " (" + user.department + ")"',
            "title": "user.title",
            f"{ENTERPRISE}:department": "user.department",
            'emails[type eq "work"].value': "user.email",
        },
    )
    preview = api.post(f"/apps/{app['id']}/policy/preview", json={"policy": draft}).json()
    assert preview["counts"]["update"] == 2
    assert preview["counts"]["deactivate"] == 1
    by_login = {c["login"].split(".")[0]: c for c in preview["changes"]}
    assert by_login["eve"]["operation"] == "deactivate"
    assert "outside the policy scope" in by_login["eve"]["reason"]
    ada = {c["attribute"]: (c["old"], c["new"]) for c in by_login["ada"]["changes"]}
    assert ada["displayName"][1].endswith("(Engineering)")
    assert ada["title"] == (None, "Engineer")
    assert ada[f"{ENTERPRISE}.department"] == (None, "Engineering")
    assert "externalId" not in ada  # no longer mapped: left as the app has it, not cleared

    # Nothing written, nothing sent.
    assert api.get(f"/apps/{app['id']}/policy").json()["version"] == 0
    assert api.get("/tasks").json()["items"] == tasks_before
    assert len(target.requests) == requests_before
    assert api.get("/logs", params={"action": "app.policy.preview"}).json()["items"]


def test_narrowing_the_scope_deprovisions_exactly_those_who_left(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    app, users = setup_app(api, target, {"ann": "Engineering", "ben": "Support", "cat": "Sales", "dan": "Sales"})
    logins = {k: u["profile"]["login"] for k, u in users.items()}
    saved = api.put(f"/apps/{app['id']}/policy", json=policy_with(
        api, app["id"], scope='user.department in ["Engineering", "Support"]'))
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["version"] == 1
    assert body["changed"] is True
    run = wait_run(api, body["run"]["id"])
    assert run["policy_version"] == 1
    assert run["counts"]["deactivated"] == 2, run
    for key in ("cat", "dan"):
        assert remote_user(scim, logins[key])["active"] is False
    for key in ("ann", "ben"):
        assert remote_user(scim, logins[key])["active"] is True
    update = api.get("/logs", params={"action": "app.policy.update", "app": app["id"]}).json()["items"][0]
    assert update["details"]["diff"] == [{"field": "scope", "old": None, "new": 'user.department in ["Engineering", "Support"]'}]
    # Saving the same document again changes nothing and runs nothing.
    again = api.put(f"/apps/{app['id']}/policy", json=policy_with(api, app["id"])).json()
    assert again["changed"] is False
    assert again["run"] is None
    # A preview of the saved policy after the run has nothing to do.
    assert api.post(f"/apps/{app['id']}/policy/preview", json={}).json()["changes"] == []


def test_the_safety_limit_holds_a_run_until_approved(api: httpx.Client, scim: httpx.Client, target: str) -> None:
    app, users = setup_app(api, target, {f"p{i}": "Sales" for i in range(5)})
    api.put(f"/apps/{app['id']}/policy", json=policy_with(
        api, app["id"], limits={"max_deprovisions": 2, "max_deprovision_percent": None})).raise_for_status()
    narrowed = api.put(f"/apps/{app['id']}/policy", json=policy_with(
        api, app["id"], scope='user.department == "Engineering"')).json()
    run = narrowed["run"]
    assert run["status"] == "held"
    assert run["held"]["counts"]["deactivate"] == 5
    time.sleep(0.5)
    assert all(remote_user(scim, u["profile"]["login"])["active"] for u in users.values())  # nothing done
    assert api.get("/logs", params={"action": "app.run.held"}).json()["items"]

    # A later change to one of these users cannot slip past the hold.
    one = next(iter(users.values()))
    api.patch(f"/users/{one['id']}", json={"profile": {"title": "Manager"}}).raise_for_status()
    time.sleep(0.5)
    assert remote_user(scim, one["profile"]["login"])["active"] is True

    approved = api.post(f"/runs/{run['id']}/approve")
    assert approved.status_code == 200, approved.text
    finished = wait_run(api, run["id"])
    assert finished["counts"]["deactivated"] == 5, finished
    assert not any(remote_user(scim, u["profile"]["login"])["active"] for u in users.values())
    assert api.post(f"/runs/{run['id']}/approve").status_code == 409
    assert api.get("/logs", params={"action": "app.run.approve"}).json()["items"]


def test_a_held_change_can_be_cancelled(api: httpx.Client, scim: httpx.Client, target: str) -> None:
    app, users = setup_app(api, target, {f"q{i}": "Sales" for i in range(4)})
    api.put(f"/apps/{app['id']}/policy", json=policy_with(
        api, app["id"], limits={"max_deprovisions": None, "max_deprovision_percent": 50})).raise_for_status()
    # Deleting the whole assigned group at once is one change over the limit.
    assignment = api.get(f"/apps/{app['id']}/assignments").json()["items"][0]
    api.delete(f"/apps/{app['id']}/assignments/{assignment['id']}").raise_for_status()
    held = eventually(lambda: [r for r in api.get(f"/apps/{app['id']}/runs").json()["items"] if r["status"] == "held"])
    cancelled = api.post(f"/runs/{held[0]['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert all(remote_user(scim, u["profile"]["login"])["active"] for u in users.values())


def test_provision_on_demand_returns_the_trace(api: httpx.Client, scim: httpx.Client, target: str) -> None:
    app, _ = setup_app(api, target, {"zed": "Engineering"})
    newcomer = api.post("/users", json=person(f"new.{time.monotonic_ns() % 10**8}", department="Engineering")).json()
    api.post(f"/apps/{app['id']}/assignments", json={"principal_type": "user", "principal_id": newcomer["id"]})
    trace = api.post(f"/apps/{app['id']}/users/{newcomer['id']}/provision")
    assert trace.status_code == 200, trace.text
    body = trace.json()
    steps = [step["step"] for step in body["trace"]]
    assert steps[0] == "scope"
    assert "desired" in steps
    assert "apply" in steps or "plan" in steps
    desired = next(s for s in body["trace"] if s["step"] == "desired")
    assert desired["attributes"]["userName"] == newcomer["profile"]["login"]
    assert remote_user(scim, newcomer["profile"]["login"]) is not None
    again = api.post(f"/apps/{app['id']}/users/{newcomer['id']}/provision").json()
    assert again["outcome"] == "unchanged"
    assert any(s["step"] == "read" for s in again["trace"])  # it reads the app first
    assert api.post(f"/apps/{app['id']}/users/nope/provision").status_code == 404


def test_a_scope_that_fails_for_some_users_fails_only_them_visibly(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    app, users = setup_app(api, target, {"has": "Engineering"})
    lacking = api.post("/users", json=person(f"lacks.{time.monotonic_ns() % 10**8}")).json()  # no department
    draft = policy_with(api, app["id"], scope='user.department == "Engineering"')
    preview = api.post(f"/apps/{app['id']}/policy/preview", json={"policy": draft}).json()
    assert preview["counts"]["failed"] == 0  # not assigned yet: not considered
    group_id = api.get(f"/apps/{app['id']}/assignments").json()["items"][0]["principal_id"]
    api.put(f"/groups/{group_id}/users/{lacking['id']}").raise_for_status()
    api.put(f"/apps/{app['id']}/policy", json=draft).raise_for_status()
    dead = eventually(lambda: [t for t in api.get("/tasks", params={"status": "dead"}).json()["items"]
                               if t["user_id"] == lacking["id"]])
    assert "user.department" in dead[0]["last_error"]
    assert remote_user(scim, users["has"]["profile"]["login"])["active"] is True
    preview = api.post(f"/apps/{app['id']}/policy/preview", json={}).json()
    errors = [c for c in preview["changes"] if c["operation"] == "error"]
    assert [e["user_id"] for e in errors] == [lacking["id"]]


def test_a_leaver_during_a_hold_is_still_deprovisioned_when_it_is_cancelled(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    app, users = setup_app(api, target, {f"h{i}": "Sales" for i in range(4)})
    keeper = users["h0"]
    api.post(f"/apps/{app['id']}/assignments", json={"principal_type": "user", "principal_id": keeper["id"]})
    api.put(f"/apps/{app['id']}/policy", json=policy_with(
        api, app["id"], limits={"max_deprovisions": 1, "max_deprovision_percent": None})).raise_for_status()
    group_assignment = next(a for a in api.get(f"/apps/{app['id']}/assignments").json()["items"]
                            if a["principal_type"] == "group")
    api.delete(f"/apps/{app['id']}/assignments/{group_assignment['id']}").raise_for_status()
    held = eventually(lambda: [r for r in api.get(f"/apps/{app['id']}/runs").json()["items"] if r["status"] == "held"])
    assert keeper["id"] in held[0]["held"]["user_ids"]
    # The keeper leaves the company while the run is held: deferred, not lost.
    api.post(f"/users/{keeper['id']}/lifecycle/deactivate").raise_for_status()
    eventually(lambda: api.get("/logs", params={"user": keeper["id"], "outcome": "skipped"}).json()["items"])
    assert remote_user(scim, keeper["profile"]["login"])["active"] is True
    api.post(f"/runs/{held[0]['id']}/cancel").raise_for_status()
    eventually(lambda: remote_user(scim, keeper["profile"]["login"])["active"] is False)
    others = [u for k, u in users.items() if k != "h0"]
    assert all(remote_user(scim, u["profile"]["login"])["active"] for u in others)  # the cancelled change


def test_a_cancelled_held_policy_is_never_in_force(api: httpx.Client, scim: httpx.Client, target: str) -> None:
    """Issue 11: the held save was cancelled, yet one later profile edit deprovisioned at once."""
    app, users = setup_app(api, target, {f"c{i}": "Sales" for i in range(4)})
    api.put(f"/apps/{app['id']}/policy", json=policy_with(
        api, app["id"], limits={"max_deprovisions": 2, "max_deprovision_percent": None})).raise_for_status()
    saved = api.put(f"/apps/{app['id']}/policy", json=policy_with(
        api, app["id"], scope='user.department == "Engineering"')).json()
    assert saved["run"]["status"] == "held"
    assert saved["version"] == 1 and saved["scope"] is None  # version 1 stays in force
    assert saved["pending"]["document"]["scope"] == 'user.department == "Engineering"'
    shown = api.get(f"/apps/{app['id']}/policy").json()
    assert (shown["version"], shown["scope"]) == (1, None)
    assert shown["pending"]["run_id"] == saved["run"]["id"]
    preview = api.post(f"/apps/{app['id']}/policy/preview", json={}).json()
    assert preview["policy_version"] == 1 and preview["pending"]["run_id"] == saved["run"]["id"]
    held = api.get("/logs", params={"action": "app.run.held", "app": app["id"]}).json()["items"][0]
    assert held["details"]["pending_policy"] == {"base_version": 1, "diff": [
        {"field": "scope", "old": None, "new": 'user.department == "Engineering"'}]}
    api.post(f"/runs/{saved['run']['id']}/cancel").raise_for_status()
    assert api.get(f"/apps/{app['id']}/policy").json()["pending"] is None
    one = users["c0"]
    api.patch(f"/users/{one['id']}", json={"profile": {"lastName": "Renamed"}}).raise_for_status()
    # Reconciled, under version 1: renamed, still active.
    eventually(lambda: remote_user(scim, one["profile"]["login"])["name"]["familyName"] == "Renamed")
    assert all(remote_user(scim, u["profile"]["login"])["active"] for u in users.values())
