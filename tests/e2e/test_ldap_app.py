"""An LDAP directory as an app, over real HTTP into a real slapd (issue 16).

The admin's journey (create, test, enable, assign with roles, update, deactivate, reactivate)
on a SQLite store; a DN template the account cannot fill and a bind that fails are recorded
with what went wrong.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import assign, eventually, person
from tests.support.slapd import ADMIN_DN, ADMIN_PASSWORD, Slapd, add_ous, read


def ldap_app(name: str, server: Slapd, ous: dict[str, str], **connector: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label": "Directory",
        "connector": {
            "kind": "ldap",
            "url": server.url,
            "start_tls": True,
            "ca_file": server.ca_file,
            "bind_dn": ADMIN_DN,
            "bind_password": ADMIN_PASSWORD,
            "users_dn": ous["people"],
            "groups_dn": ous["groups"],
            **connector,
        },
    }


def enable(api: httpx.Client, app_id: str) -> httpx.Response:
    settings = api.get(f"/apps/{app_id}/provisioning").json()
    settings.pop("last_test", None)
    return api.put(f"/apps/{app_id}/provisioning", json={**settings, "enabled": True})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ldap_admin_journey(api: httpx.Client, ldap_server: Slapd) -> None:
    token = uuid.uuid4().hex[:8]
    ous = add_ous(ldap_server, f"j{token}", "people", "groups")
    app = api.post("/apps", json=ldap_app(f"dir-{token}", ldap_server, ous))
    assert app.status_code == 201, app.text
    app_id, shown = app.json()["id"], app.json()["connector"]
    assert shown["kind"] == "ldap" and shown["secret_set"] is True
    assert ADMIN_PASSWORD not in app.text
    test = api.post(f"/apps/{app_id}/provisioning/test").json()
    assert test["ok"], test
    api.post(f"/apps/{app_id}/roles", json={"name": "editor"}).raise_for_status()
    api.post(f"/apps/{app_id}/roles", json={"name": "viewer"}).raise_for_status()
    ada = api.post("/users", json=person(f"ada.{token}")).json()
    assignment = assign(api, app_id, "user", ada["id"], role="editor")
    assert enable(api, app_id).status_code == 200
    dn = f"uid=ada.{token},{ous['people']}"
    groups = "(objectClass=groupOfNames)"
    entry = eventually(lambda: read(ldap_server, ous["people"], "(uid=*)").get(dn))
    assert entry["givenName"] == ["Ada"] and entry["mail"] == [f"ada.{token}@example.com"]
    assert read(ldap_server, ous["groups"], groups)[f"cn=editor,{ous['groups']}"]["member"] == [dn]

    # An update: the profile and the role follow.
    api.patch(f"/users/{ada['id']}", json={"profile": {"lastName": "Lovelace"}}).raise_for_status()
    eventually(lambda: read(ldap_server, dn)[dn]["sn"] == ["Lovelace"])
    api.patch(f"/apps/{app_id}/assignments/{assignment['id']}", json={"roles": ["viewer"]}).raise_for_status()
    eventually(lambda: read(ldap_server, ous["groups"], groups).get(f"cn=viewer,{ous['groups']}", {}).get("member") == [dn])
    assert read(ldap_server, ous["groups"], groups)[f"cn=editor,{ous['groups']}"]["member"] == [""]

    # Suspended: disabled in the directory; unsuspended: enabled again.
    api.post(f"/users/{ada['id']}/lifecycle/suspend").raise_for_status()
    eventually(lambda: read(ldap_server, dn)[dn].get("employeeType") == ["disabled"])
    api.post(f"/users/{ada['id']}/lifecycle/unsuspend").raise_for_status()
    eventually(lambda: "employeeType" not in read(ldap_server, dn)[dn])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ldap_bad_template_and_bad_bind_are_recorded(api: httpx.Client, ldap_server: Slapd) -> None:
    token = uuid.uuid4().hex[:8]
    ous = add_ous(ldap_server, f"b{token}", "people", "groups")
    refused = api.post("/apps", json=ldap_app(f"bad-{token}", ldap_server, ous, user_rdn="uid=userName"))
    assert refused.status_code == 422 and "user_rdn must name a SCIM attribute" in refused.text

    body = ldap_app(f"dir-{token}", ldap_server, ous, user_rdn="cn={title}")
    app_id = api.post("/apps", json=body).json()["id"]
    assert enable(api, app_id).status_code == 200
    eve = api.post("/users", json=person(f"eve.{token}")).json()  # no title
    assign(api, app_id, "user", eve["id"])
    dead = eventually(lambda: api.get("/tasks", params={"status": "dead", "app": app_id}).json()["items"])
    assert "the DN template cn={title} gives no DN: the account has no title" in dead[0]["last_error"]
    assert read(ldap_server, ous["people"], "(uid=*)") == {}

    # The stored bind password does not follow the app to another server.
    moved = api.patch(f"/apps/{app_id}", json={"connector": {"url": "ldap://localhost:1"}})
    assert moved.status_code == 422 and "bind_password" in moved.json()["detail"]
    wrong = api.patch(f"/apps/{app_id}", json={"connector": {"bind_password": "wrong"}})
    assert wrong.status_code == 200, wrong.text
    test = api.post(f"/apps/{app_id}/provisioning/test").json()
    assert not test["ok"] and test["reason"] == f"bind: bind as {ADMIN_DN} failed: invalidCredentials"
    logged = api.get("/logs", params={"action": "app.provisioning.test", "app": app_id}).json()["items"]
    # The log (every role reads it) says which step failed, not what the server answered.
    assert logged[0]["outcome"] == "failure" and "bind" in logged[0]["message"]
    assert "invalidCredentials" not in str(logged[0])
