"""The policy commands: show, preview a draft file, set, provision on demand, held runs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.cli.conftest import Run, flat, ok
from tests.e2e.conftest import eventually, person, scim_app


def test_policy_round_trip(cli: Run, api: httpx.Client, target: str, tmp_path: Path) -> None:
    app = api.post("/apps", json=scim_app("cli-policy", target)).json()
    group = api.post("/groups", json={"name": "cli-policy"}).json()
    users = [api.post("/users", json=person(f"cp.{name}", department=dept)).json()
             for name, dept in (("ann", "Engineering"), ("bo", "Sales"))]
    for user in users:
        api.put(f"/groups/{group['id']}/users/{user['id']}").raise_for_status()
    api.post(f"/apps/{app['id']}/assignments", json={"principal_type": "group", "principal_id": group["id"]})
    ok(cli("provisioning", "enable", "cli-policy", "--wait"))

    shown = json.loads(ok(cli("--json", "policy", "show", "cli-policy")).stdout)
    assert shown["version"] == 0
    draft = {**shown, "scope": 'user.department == "Engineering"', "limits": {"max_deprovisions": 1}}
    file = tmp_path / "policy.json"
    file.write_text(json.dumps(draft))

    preview = flat(ok(cli("preview", "cli-policy", "--policy", str(file))).stdout)
    assert "deactivate cp.bo" in preview
    assert "outside the policy scope" in preview
    assert "1 deactivate" in preview
    assert api.get(f"/apps/{app['id']}/policy").json()["version"] == 0  # a preview saves nothing

    saved = ok(cli("policy", "set", "cli-policy", "--file", str(file)))
    assert "version 1" in saved.stdout
    eventually(lambda: api.get(f"/apps/{app['id']}/accounts", params={"status": "deactivated"}).json()["items"])

    trace = ok(cli("provision", "cli-policy", users[0]["id"]))
    assert "scope" in trace.stdout
    assert "outcome: unchanged" in trace.stdout

    runs = ok(cli("runs", "list", "cli-policy")).stdout
    assert "policy" in runs

    bad = tmp_path / "bad.json"
    bad.write_text('{"scope": "user.department ==", "mappings": {"userName": "user.login"}}')
    refused = cli("policy", "set", "cli-policy", "--file", str(bad))
    assert refused.exit_code == 1
    assert "scope" in refused.stderr
    not_json = tmp_path / "not.json"
    not_json.write_text("scope: x")
    assert "not JSON" in cli("policy", "set", "cli-policy", "--file", str(not_json)).stderr


def test_held_runs_are_approved_from_the_cli(cli: Run, api: httpx.Client, target: str, tmp_path: Path) -> None:
    app = api.post("/apps", json=scim_app("cli-held", target)).json()
    users = [api.post("/users", json=person(f"ch.{i}")).json() for i in range(3)]
    assignments = [
        api.post(f"/apps/{app['id']}/assignments", json={"principal_type": "user", "principal_id": u["id"]}).json()
        for u in users
    ]
    ok(cli("provisioning", "enable", "cli-held", "--wait"))
    document = {**api.get(f"/apps/{app['id']}/policy").json(), "scope": "user.login == 'nobody'",
                "limits": {"max_deprovisions": 2}}
    file = tmp_path / "narrow.json"
    file.write_text(json.dumps(document))
    held = cli("policy", "set", "cli-held", "--file", str(file))
    assert held.exit_code == 1
    assert "held" in flat(held.stdout)
    run_id = api.get(f"/apps/{app['id']}/runs").json()["items"][0]["id"]
    approved = ok(cli("runs", "approve", run_id))
    # A policy run says so, labelled with the app's name (not "sync <app id>").
    assert f"policy run {run_id} succeeded" in approved.stdout and "full sync" not in approved.output
    assert "policy run of cli-held" in approved.stderr and app["id"] not in approved.stderr
    assert len(api.get(f"/apps/{app['id']}/accounts", params={"status": "deactivated"}).json()["items"]) == 3
    assert cli("runs", "cancel", run_id).exit_code == 1  # no longer held
    assert assignments
