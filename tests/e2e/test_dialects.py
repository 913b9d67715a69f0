"""Every shipped dialect profile through the admin's journey, each against a strict peer that
enforces it (tests/support/strict.py) over real HTTP: create the app with its profile, test it,
enable it, assign a group, update, deactivate, push the group, import what the app holds. The
peer refuses anything said in another dialect; the journey passes only if the connector never
made it refuse.

One more case is a PUT-only app that cannot filter and ignores ``count``: an account it already
holds must be linked (found by listing), never duplicated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from provisiond.domain.dialects import ScimProfile
from tests.e2e.conftest import TARGET_TOKEN, assign, eventually, person
from tests.e2e.test_import import finished_import
from tests.support.servers import serve_app
from tests.support.strict import StrictTarget

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
LISTING_ONLY = {"name": "rfc", "patch": "none", "filter": "none", "count_honoured": False}


@pytest.fixture
def strict(request: pytest.FixtureRequest) -> Iterator[tuple[StrictTarget, str]]:
    target = StrictTarget(ScimProfile.model_validate(request.param), token=TARGET_TOKEN)
    with serve_app(target) as url:
        yield target, url + "/v2"


def app_users(base: str) -> dict[str, dict[str, Any]]:
    """Every account the app holds, by userName, read by listing (no filter: not every peer can)."""
    found: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TARGET_TOKEN}"}) as app:
        start = 1
        while True:
            page = app.get("/Users", params={"startIndex": start, "count": 100}).json()
            resources = page.get("Resources") or []
            found |= {user["userName"]: user for user in resources}
            start += len(resources)
            if not resources:
                return found


def app_group(base: str, name: str) -> set[str] | None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TARGET_TOKEN}"}) as app:
        groups = app.get("/Groups", params={"count": 1000}).json().get("Resources") or []
    for group in groups:
        if group["displayName"] == name:
            return {member["value"] for member in group.get("members") or []}
    return None


def inactive(user: dict[str, Any]) -> bool:
    return str(user.get("active")).lower() == "false"  # "False" from an Entra-style app


@pytest.mark.parametrize(
    ("database_url", "strict"),
    [
        ("sqlite", "rfc"),
        ("sqlite", "entra-compatible"),
        ("sqlite", "okta-compatible"),
        ("sqlite", LISTING_ONLY),
        ("postgresql", "okta-compatible"),
    ],
    indirect=True,
    ids=["rfc", "entra", "okta", "listing-only", "okta-postgresql"],
)
def test_a_profile_through_the_admin_journey(
    api: httpx.Client, strict: tuple[StrictTarget, str]
) -> None:
    target, base = strict
    profile = target.profile
    tag = str(time.monotonic_ns())[-8:]
    ada = api.post("/users", json=person(f"ada.{tag}")).json()
    bob = api.post("/users", json=person(f"bob.{tag}")).json()
    team = api.post("/groups", json={"name": f"Team {tag}"}).json()
    for user in (ada, bob):
        assert api.put(f"/groups/{team['id']}/users/{user['id']}").status_code == 204
    # Bob already has an account in the app: it must be linked. Listed, it is matched by the
    # RFC's rule (userName is not caseExact); filtered, the app's own filter decides.
    held = f"BOB.{tag}" if not profile.filters else f"bob.{tag}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TARGET_TOKEN}"}) as app:
        made = app.post("/Users", json={"schemas": [CORE_USER], "userName": held})
        assert made.status_code == 201, made.text
        bob_id = made.json()["id"]

    connector = {
        "type": "scim2",
        "base_url": base,
        "auth": {"type": "bearer", "token": TARGET_TOKEN},
        "profile": profile.model_dump(mode="json"),
    }
    created = api.post("/apps", json={"name": f"app-{tag}", "label": "App", "connector": connector})
    assert created.status_code == 201, created.text
    app_id = created.json()["id"]
    tested = api.post(f"/apps/{app_id}/provisioning/test").json()
    assert tested["ok"], tested
    assert tested["notes"] == profile.notes()

    settings = api.get(f"/apps/{app_id}/provisioning").json()
    settings.pop("last_test", None)
    settings["features"] = {**settings["features"], "push_groups": True}
    enabled = api.put(f"/apps/{app_id}/provisioning", json={**settings, "enabled": True})
    assert enabled.status_code == 200, enabled.text

    assign(api, app_id, "group", team["id"])
    accounts = eventually(lambda: app_users(base) if f"ada.{tag}" in app_users(base) else None)
    bobs = [user["id"] for name, user in accounts.items() if name.lower() == f"bob.{tag}"]
    assert bobs == [bob_id], "bob's account was duplicated, not linked"
    answer = api.post(f"/apps/{app_id}/push-groups", json={"group": team["id"]})
    assert answer.status_code == 202, answer.text
    ada_id = accounts[f"ada.{tag}"]["id"]
    eventually(lambda: app_group(base, f"Team {tag}") == {ada_id, bob_id})

    api.patch(f"/users/{ada['id']}", json={"profile": {"lastName": "Lovelace"}}).raise_for_status()
    eventually(lambda: app_users(base)[f"ada.{tag}"]["name"]["familyName"] == "Lovelace")

    api.post(f"/users/{ada['id']}/lifecycle/deactivate").raise_for_status()
    eventually(lambda: inactive(app_users(base)[f"ada.{tag}"]))
    eventually(lambda: app_group(base, f"Team {tag}") == {bob_id})

    # Import: every account the app holds is read in its dialect (pages as it pages them),
    # and one planted behind provisiond's back is an orphan, linked to nobody.
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TARGET_TOKEN}"}) as app:
        ghost = app.post("/Users", json={"schemas": [CORE_USER], "userName": f"ghost.{tag}"})
        assert ghost.status_code == 201, ghost.text
    done = finished_import(api, app_id)
    assert done["accounts"] >= 3
    orphans = api.get(f"/apps/{app_id}/orphans").json()["items"]
    assert [o["reason"] for o in orphans if o["account"]["remote_id"] == ghost.json()["id"]] == [
        "unlinked"
    ]

    assert not target.refused, target.refused  # the app never had to refuse our dialect
    by_login = {a["login"]: a for a in api.get(f"/apps/{app_id}/accounts").json()["items"]}
    assert by_login[f"ada.{tag}"]["status"] == "deactivated"
    assert by_login[f"bob.{tag}"]["status"] == "active"
