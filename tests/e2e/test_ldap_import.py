"""LDAP as a source (issue 16): an import from slapd lands in the directory and flows to a
scim2-server app; a user removed from LDAP is deprovisioned downstream."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import eventually, remote_user, scim_app
from tests.support.slapd import ADMIN_DN, ADMIN_PASSWORD, Slapd, add_ous, admin_connection


def person_entry(login: str, **extra: str) -> dict[str, Any]:
    first, _, last = login.partition(".")
    return {"uid": login, "cn": login, "givenName": first.title(), "sn": last.title() or "X", **extra}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_import_from_ldap_flows_downstream(
    api: httpx.Client, scim: httpx.Client, target: str, ldap_server: Slapd
) -> None:
    token = uuid.uuid4().hex[:8]
    ous = add_ous(ldap_server, f"s{token}", "people", "groups")
    ada, bob, eve = f"ada.{token}", f"bob.{token}", f"eve.{token}"
    conn = admin_connection(ldap_server)
    try:
        for login, extra in ((ada, {}), (bob, {"employeeType": "disabled"})):
            entry = person_entry(login, mail=f"{login}@example.com", **extra)
            assert conn.add(f"uid={login},{ous['people']}", ["inetOrgPerson"], entry), conn.result
        group = f"Eng {token}"
        members = [f"uid={ada},{ous['people']}", f"uid={bob},{ous['people']}"]
        assert conn.add(f"cn={group},{ous['groups']}", ["groupOfNames"], {"member": members})
        source = {
            "name": f"corp-{token}", "url": ldap_server.url, "bind_dn": ADMIN_DN,
            "bind_password": ADMIN_PASSWORD, "base_dn": ous["people"],
            "group_base_dn": ous["groups"], "disabled_attribute": "employeeType",
        }

        # The preview changes nothing.
        preview = api.post("/ldap-imports", json={"source": source})
        assert preview.status_code == 200, preview.text
        assert preview.json()["counts"] | {} == {
            "create": 2, "update": 0, "suspend": 0, "reactivate": 0, "deactivate": 0,
            "create_group": 1, "add_member": 2, "remove_member": 0, "error": 0,
        }
        assert ADMIN_PASSWORD not in preview.text
        assert api.get("/users", params={"q": token}).json()["items"] == []

        applied = api.post("/ldap-imports", json={"source": source, "apply": True}).json()
        assert applied["applied"] and applied["counts"]["create"] == 2
        users = {u["profile"]["login"]: u for u in api.get("/users", params={"q": token}).json()["items"]}
        assert users[ada]["status"] == "active" and users[bob]["status"] == "staged"
        assert users[ada]["profile"]["ldapSource"] == f"corp-{token}"
        again = api.post("/ldap-imports", json={"source": source}).json()
        assert set(again["counts"].values()) == {0}  # in sync: nothing left to do

        # The imported group, assigned to a SCIM app: Ada is provisioned, Bob (disabled) is not.
        app = api.post("/apps", json=scim_app(f"wiki-{token}", target)).json()
        gid = next(g["id"] for g in api.get("/groups").json()["items"] if g["name"] == group)
        api.post(f"/apps/{app['id']}/assignments", json={"principal_type": "group", "principal_id": gid}).raise_for_status()
        settings = api.get(f"/apps/{app['id']}/provisioning").json()
        settings.pop("last_test", None)
        api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}).raise_for_status()
        eventually(lambda: remote_user(scim, ada))
        assert remote_user(scim, bob) is None

        # Ada leaves the directory: the next import deactivates her, and so does the app.
        assert conn.delete(f"uid={ada},{ous['people']}")
        applied = api.post("/ldap-imports", json={"source": source, "apply": True}).json()
        assert applied["deactivate"] == [ada] and applied["remove_member"] == [{"group": group, "login": ada}]
        eventually(lambda: remote_user(scim, ada)["active"] is False)

        # An entry that cannot be a profile (no mail): shown, and nothing is applied.
        assert conn.add(f"uid={eve},{ous['people']}", ["inetOrgPerson"], person_entry(eve))
        assert conn.modify(f"uid={bob},{ous['people']}", {"employeeType": [("MODIFY_DELETE", [])]})
        refused = api.post("/ldap-imports", json={"source": source, "apply": True})
        assert refused.status_code == 409 and "nothing imported" in refused.json()["detail"]
        assert f"uid={eve},{ous['people']}: email: Field required" in refused.json()["detail"]
        users = {u["profile"]["login"]: u for u in api.get("/users", params={"q": token}).json()["items"]}
        assert eve not in users and users[bob]["status"] == "staged"
    finally:
        conn.unbind()
