"""A user (or group) a SCIM client created is owned by it: the console says so, and an admin edit of
an attribute it owns is warned of (or refused, by setting) in the console and the API."""

from __future__ import annotations

import time

import httpx
import pytest

from provisiond.errors import Conflict
from provisiond.runtime import Runtime
from provisiond.services import directory, scim_clients
from provisiond.services.context import SYSTEM
from provisiond.services.inbound import ownership
from tests.web.conftest import post_form
from tests.web.test_profile_edit import _form


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_scim_owned_users_are_shown_and_admin_edits_warned(
    server: str, console: httpx.Client, api: httpx.Client, runtime: Runtime
) -> None:
    s = str(time.monotonic_ns())[-8:]
    with runtime.db.session() as session:
        token = scim_clients.create_client(session, SYSTEM, f"hr-{s}")[0]
    created = httpx.post(f"{server}/scim/v2/Users", headers={"Authorization": f"Bearer {token}"},
                         json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                               "userName": f"owned{s}", "name": {"givenName": "O", "familyName": "W"},
                               "emails": [{"value": f"owned{s}@example.com"}]})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    page = console.get(f"/directory/users/{user_id}")
    assert f"Source: SCIM client <strong>hr-{s}</strong>" in page.text
    group = httpx.post(f"{server}/scim/v2/Groups", headers={"Authorization": f"Bearer {token}"},
                       json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                             "displayName": f"owned-group{s}", "members": [{"value": user_id}]})
    assert group.status_code == 201, group.text
    group_page = console.get(f"/directory/groups/{group.json()['id']}")
    assert f"Source: SCIM client <strong>hr-{s}</strong>" in group_page.text

    edit = f"/directory/users/{user_id}/edit"
    profile = api.get(f"/users/{user_id}").json()["profile"]
    saved = post_form(console, edit, edit, _form(profile, firstName="Changed"))
    assert saved.status_code == 303
    assert f"belong to the SCIM client hr-{s}" in console.get(saved.headers["location"]).text

    answer = api.patch(f"/users/{user_id}", json={"profile": {"lastName": "Edited"}})
    assert answer.status_code == 200 and f"hr-{s}" in answer.headers["warning"]
    custom = api.patch(f"/users/{user_id}", json={"profile": {"badge": "B-1"}})
    assert "warning" not in custom.headers  # custom attributes are the directory's own

    with runtime.db.session() as session:
        user = directory.get_user(session, user_id)
        with pytest.raises(Conflict):
            ownership.check_admin_edit(session, user, {"lastName": "Again"}, "refuse")
