"""Names everywhere: a login, a group's or an app's name wherever the CLI takes an id, and
names, not ids, in its tables and progress; against a real server and SCIM app."""

from __future__ import annotations

import time

import httpx

from tests.cli.conftest import Run, flat, ok
from tests.e2e.conftest import eventually, person, remote_user, scim_app


def test_logins_and_names_in_place_of_ids(
    cli: Run, api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    login = f"ada_l.{suffix}"  # "_" is a wildcard to the users search: matched exactly here
    ada = api.post("/users", json=person(login)).json()
    api.post("/users", json=person(f"adaxl.{suffix}")).raise_for_status()  # what "_" also matches
    group = api.post("/groups", json={"name": f"Support {suffix}"}).json()
    app = api.post("/apps", json=scim_app(f"crm-{suffix}", target)).json()
    api.put(f"/apps/{app['id']}/provisioning", json={"enabled": True}).raise_for_status()

    # A group by name, in any case, and a user by login.
    assigned = ok(cli("assign", app["name"], "--group", f"support {suffix}")).stdout
    assert f"assigned group support {suffix} to {app['name']}" in assigned
    ok(cli("groups", "add", f"SUPPORT {suffix}", login))
    assert [u["id"] for u in api.get(f"/groups/{group['id']}/users").json()["items"]] == [ada["id"]]
    ok(cli("assign", app["name"], "--user", login))
    rows = api.get(f"/apps/{app['id']}/assignments").json()["items"]
    assert {(r["principal_type"], r["principal_id"]) for r in rows} == {
        ("group", group["id"]), ("user", ada["id"])}

    # The tables say who, by name.
    listing = ok(cli("assignments", app["name"])).stdout
    assert f"Support {suffix}" in listing and login in listing
    assert group["id"] not in listing and ada["id"] not in listing

    # provision and preview take a login and say "assigned via group:<name>".
    provisioned = flat(ok(cli("provision", app["name"], login)).stdout)
    assert f"group:Support {suffix}" in provisioned and group["id"] not in provisioned
    eventually(lambda: remote_user(scim, login))
    previewed = ok(cli("preview", app["name"])).stdout
    assert group["id"] not in previewed

    # users and groups commands take logins and names too; ids still work.
    assert ada["id"] in ok(cli("users", "get", login)).stdout
    assert ada["id"] in ok(cli("users", "get", ada["id"])).stdout
    assert f"Support {suffix}" in ok(cli("groups", "get", f"support {suffix}")).stdout
    assert login in ok(cli("groups", "members", f"Support {suffix}")).stdout
    ok(cli("users", "suspend", login))
    assert api.get(f"/users/{ada['id']}").json()["status"] == "suspended"

    # Unknown names are clear errors that change nothing.
    missing = cli("assign", app["name"], "--user", f"ADA_L.{suffix}")
    assert missing.exit_code == 1
    assert f"no user with id or login 'ADA_L.{suffix}' (did you mean '{login}'?)" in flat(missing.output)
    nogroup = cli("groups", "add", f"nobody {suffix}", login)
    assert nogroup.exit_code == 1 and f"no group with id or name 'nobody {suffix}'" in missing.output + nogroup.output
    assert len(api.get(f"/apps/{app['id']}/assignments").json()["items"]) == 2
