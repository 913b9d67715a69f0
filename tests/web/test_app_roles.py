"""The console's Roles tab and the role on the Assignments form."""

from __future__ import annotations

import re
import time

import httpx

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.runtime import Runtime
from provisiond.services import apps, directory
from provisiond.services.context import SYSTEM
from tests.e2e.conftest import assign, eventually, person, scim_app
from tests.e2e.test_app_roles import roles_in_app
from tests.support.servers import free_port
from tests.web.conftest import post_form


def test_define_assign_and_refuse_deleting_an_assigned_role(
    console: httpx.Client, runtime: Runtime
) -> None:
    with runtime.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, runtime.vault, name="crm", label="CRM",
            connector=ScimConnectorSettings(base_url=f"http://127.0.0.1:{free_port()}/v2"),
            provisioning=ProvisioningSettings(),
        )
        group = directory.create_group(session, SYSTEM, "Engineering", None)
        app_id, group_id = app.id, group.id
    tab = f"/apps/{app_id}/roles"
    missing = post_form(console, tab, tab, {"name": "", "kind": "scim_role", "value": ""})
    assert missing.status_code == 422 and 'id="name-error"' in missing.text
    created = post_form(console, tab, tab, {"name": "editor", "kind": "entitlement", "value": ""})
    assert created.status_code == 303
    shown = console.get(tab).text
    assert "Role editor defined" in shown
    assert "<code>editor</code>" in shown and "entitlement" in shown
    twice = post_form(console, tab, tab, {"name": "EDITOR", "kind": "scim_role", "value": ""})
    assert twice.status_code == 422 and "already" in twice.text

    page = console.get(f"/apps/{app_id}/assignments").text
    role_id = re.search(r'<option value="([^"]+)" >editor</option>', page)
    assert role_id, page
    assigned = post_form(console, f"/apps/{app_id}/assignments", f"/apps/{app_id}/assignments", {
        "principal_type": "group", "group_id": group_id, "login": "", "role": role_id[1],
        "priority": "3"})
    assert assigned.status_code == 303
    assert "<td>editor</td>" in console.get(f"/apps/{app_id}/assignments").text

    delete = f"/apps/{app_id}/roles/{role_id[1]}/delete"
    refused = post_form(console, tab, delete, {})
    assert refused.status_code == 409 and "granted by 1 assignment" in refused.text


def test_edit_a_role_and_the_role_mode(
    console: httpx.Client, api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    """A role renamed and re-expressed in the console reaches its holder's account; the
    role_mode setting is on the Provisioning tab and survives saving the other settings."""
    s = str(time.monotonic_ns())[-8:]
    app = api.post("/apps", json=scim_app(f"re-{s}", target)).json()
    tab = f"/apps/{app['id']}/roles"
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    settings.pop("last_test", None)
    api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}).raise_for_status()
    role = api.post(f"/apps/{app['id']}/roles", json={"name": "viewer"}).json()
    api.post(f"/apps/{app['id']}/roles", json={"name": "admin"}).raise_for_status()
    user = api.post("/users", json=person(f"rae.r{s}")).json()
    assign(api, app["id"], "user", user["id"], role=role["id"])
    eventually(lambda: roles_in_app(scim, f"rae.r{s}") == ["viewer"], timeout=30)

    assert f'href="{tab}/{role["id"]}/edit"' in console.get(tab).text
    edit = f"{tab}/{role['id']}/edit"
    form = console.get(edit)
    assert form.status_code == 200 and 'value="viewer"' in form.text
    taken = post_form(console, edit, edit, {"name": "ADMIN", "description": "", "kind": "scim_role",
                                            "value": ""})
    assert taken.status_code == 422 and 'id="name-error"' in taken.text
    assert api.get(f"/apps/{app['id']}/roles/{role['id']}").json()["name"] == "viewer"
    saved = post_form(console, edit, edit, {"name": "reader", "description": "Reads",
                                            "kind": "scim_role", "value": "read-only"})
    assert saved.status_code == 303
    now = api.get(f"/apps/{app['id']}/roles/{role['id']}").json()
    assert now["name"] == "reader" and now["description"] == "Reads"
    eventually(lambda: roles_in_app(scim, f"rae.r{s}") == ["read-only"], timeout=30)

    # role_mode: shown, saved, and kept when the other settings are saved without it.
    page = f"/apps/{app['id']}/provisioning"
    assert '<option value="priority" selected>' in console.get(page).text
    fields = {"enabled": "on", "feature_create_users": "on", "feature_update_users": "on",
              "feature_deactivate_users": "on", "deprovision_action": "deactivate",
              "matching": "userName", "concurrency": "4", "rate_limit_per_second": ""}
    saved = post_form(console, page, page, {**fields, "role_mode": "combine"})
    assert saved.status_code == 303, saved.text
    assert api.get(f"/apps/{app['id']}/provisioning").json()["role_mode"] == "combine"
    assert '<option value="combine" selected>' in console.get(page).text
    assert post_form(console, page, page, fields).status_code == 303
    assert api.get(f"/apps/{app['id']}/provisioning").json()["role_mode"] == "combine"
