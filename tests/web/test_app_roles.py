"""The console's Roles tab and the role on the Assignments form."""

from __future__ import annotations

import re

import httpx

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.runtime import Runtime
from provisiond.services import apps, directory
from provisiond.services.context import SYSTEM
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
