"""The console's Groups tab of an app: push a directory group, sync it, unpush it, against a real
server and the real scim2-server (both backends); who may see and do what."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import httpx

from tests.e2e.conftest import eventually, person, scim_app
from tests.support.remote_groups import remote_group, remote_ids, remote_members, set_members
from tests.web.conftest import MakeAdmin, post_form, sign_in


def _user(api: httpx.Client, login: str) -> str:
    answer = api.post("/users", json=person(login))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _group(api: httpx.Client, name: str, *user_ids: str) -> str:
    group = api.post("/groups", json={"name": name})
    assert group.status_code == 201, group.text
    group_id = str(group.json()["id"])
    for user_id in user_ids:
        api.put(f"/groups/{group_id}/users/{user_id}").raise_for_status()
    return group_id


def _turn_on(api: httpx.Client, app_id: str) -> None:
    settings = api.get(f"/apps/{app_id}/provisioning").json()
    settings.pop("last_test", None)
    features = {**settings["features"], "push_groups": True}
    answer = api.put(
        f"/apps/{app_id}/provisioning", json={**settings, "enabled": True, "features": features}
    )
    assert answer.status_code == 200, answer.text


def _row(page: str, name: str) -> str:
    """The table row of a pushed group, its markup flattened to text."""
    match = re.search(rf'<tr data-group="{re.escape(name)}">(.*?)</tr>', page, re.S)
    assert match, page
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def _options(page: str) -> list[str]:
    select = re.search(r'<select id="group_id".*?</select>', page, re.S)
    assert select, page
    return re.findall(r'<option value="[^"]+" [^>]*>([^<]+)</option>', select.group(0))


def _setup(api: httpx.Client, target: str, s: str) -> dict[str, Any]:
    app = api.post("/apps", json=scim_app(f"pg-{s}", target)).json()
    ann, bob = _user(api, f"ann.w{s}"), _user(api, f"bob.w{s}")
    cy = _user(api, f"cy.w{s}")  # in the group, but without an account in the app
    staff = _group(api, f"Staff-{s}", ann, bob)
    api.post(
        f"/apps/{app['id']}/assignments", json={"principal_type": "group", "principal_id": staff}
    ).raise_for_status()
    eng = f"Eng {s}"
    return {"app": app, "eng": eng, "eng_id": _group(api, eng, ann, bob, cy), "bob": bob}


def test_push_sync_and_unpush_a_group_from_the_console(
    console: httpx.Client, api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = str(time.monotonic_ns())[-8:]
    world = _setup(api, target, s)
    app, eng, eng_id = world["app"], world["eng"], world["eng_id"]
    tab = f"/apps/{app['id']}/push-groups"

    # The feature is off: the tab says so, and a push is refused with the reason.
    page = console.get(tab)
    assert page.status_code == 200 and 'id="feature-off"' in page.text
    assert 'aria-current="page">Groups</a>' in page.text and eng in _options(page.text)
    refused = post_form(console, tab, tab, {"group_id": eng_id, "unpush_action": "leave"})
    assert refused.status_code == 409 and 'role="alert"' in refused.text
    assert "does not push groups" in refused.text and 'id="group_id-error"' in refused.text
    assert remote_group(scim, eng) is None

    _turn_on(api, app["id"])
    eventually(lambda: remote_ids(scim, f"ann.w{s}", f"bob.w{s}"))
    missing = post_form(console, tab, tab, {"group_id": "", "unpush_action": "leave"})
    assert missing.status_code == 422 and "choose a group" in missing.text
    pushed = post_form(console, tab, tab, {"group_id": eng_id, "unpush_action": "delete"})
    assert pushed.status_code == 303 and pushed.headers["location"] == tab
    assert f"Pushing {eng} to" in console.get(tab).text  # the flash

    # The app's group holds Ann and Bob (Cy has no account there); the tab shows it active.
    expected = remote_ids(scim, f"ann.w{s}", f"bob.w{s}")
    eventually(lambda: remote_members(scim, eng) == expected)
    remote = remote_group(scim, eng)
    assert remote is not None
    row = eventually(
        lambda: (r := _row(console.get(tab).text, eng)).startswith(f"{eng} active") and r
    )
    assert f"{eng} active 2 no {eng} {remote['id']}" in row, row
    page = console.get(tab).text
    assert eng not in _options(page)  # pushed already: no longer offered
    twice = post_form(console, tab, tab, {"group_id": eng_id, "unpush_action": "leave"})
    assert twice.status_code == 409 and "already pushed" in twice.text

    # Drift made in the app is undone by Sync.
    set_members(scim, eng, remote_ids(scim, f"ann.w{s}"))
    synced = post_form(console, tab, f"{tab}/{eng_id}/sync", {})
    assert synced.status_code == 303
    assert f"Checking {eng} in" in console.get(tab).text
    eventually(lambda: remote_members(scim, eng) == expected)

    # Unpush, deleting the app's group: gone from the app, then from the tab.
    # Deleting the app's group asks first, with what it costs; nothing is done meanwhile.
    asked = post_form(console, tab, f"{tab}/{eng_id}/unpush", {"action": "delete"})
    assert asked.status_code == 200 and "its 2 members there lose that membership" in asked.text
    assert remote_group(scim, eng) is not None and "being unpushed" not in console.get(tab).text
    unpushed = post_form(
        console, tab, f"{tab}/{eng_id}/unpush", {"action": "delete", "confirmed": "yes"}
    )
    assert unpushed.status_code == 303
    assert "its group there will be deleted" in console.get(tab).text
    eventually(lambda: remote_group(scim, eng) is None)
    eventually(lambda: "No group is pushed" in console.get(tab).text)
    assert eng in _options(console.get(tab).text)
    gone = post_form(console, tab, f"{tab}/{eng_id}/sync", {})
    assert gone.status_code == 404 and "is not pushed" in gone.text


def test_unpush_keeps_the_group_and_only_managers_may_change_anything(
    console: httpx.Client,
    api: httpx.Client,
    scim: httpx.Client,
    target: str,
    server: str,
    make_admin: MakeAdmin,
) -> None:
    s = str(time.monotonic_ns())[-8:]
    world = _setup(api, target, s)
    app, eng, eng_id = world["app"], world["eng"], world["eng_id"]
    tab = f"/apps/{app['id']}/push-groups"
    _turn_on(api, app["id"])
    eventually(lambda: remote_ids(scim, f"ann.w{s}", f"bob.w{s}"))

    # An app_admin of this app pushes the group (leave on unpush, the default).
    make_admin(f"manager{s}", "app_admin", [app["name"]])
    with sign_in(server, f"manager{s}") as manager:
        assert 'id="push-title"' in manager.get(tab).text
        assert post_form(manager, tab, tab, {"group_id": eng_id}).status_code == 303
    expected = remote_ids(scim, f"ann.w{s}", f"bob.w{s}")
    eventually(lambda: remote_members(scim, eng) == expected)

    # A read_only admin sees the group but no form, and may not push, sync or unpush.
    make_admin(f"reader{s}", "read_only")
    with sign_in(server, f"reader{s}") as reader:
        page = reader.get(tab)
        assert page.status_code == 200 and eng in _row(page.text, eng)
        assert 'id="push-title"' not in page.text and "/unpush" not in page.text
        for action in (tab, f"{tab}/{eng_id}/sync", f"{tab}/{eng_id}/unpush"):
            denied = post_form(reader, "/", action, {"group_id": eng_id, "action": "delete"})
            assert denied.status_code == 403 and "may not" in denied.text, action
    # A form that did not come from the console is refused.
    forged = console.post(f"{tab}/{eng_id}/unpush", data={"action": "delete"})
    assert forged.status_code == 403 and "expired" in forged.text
    assert remote_members(scim, eng) == expected

    # Bob leaves the directory group: he leaves the app's group, without any click.
    api.delete(f"/groups/{eng_id}/users/{world['bob']}").raise_for_status()
    eventually(lambda: remote_members(scim, eng) == remote_ids(scim, f"ann.w{s}"))

    # Unpush with the action chosen at push time (leave): the app's group stays as it was.
    unpushed = post_form(console, tab, f"{tab}/{eng_id}/unpush", {})
    assert unpushed.status_code == 303
    assert "its group there will be left as it is" in console.get(tab).text
    eventually(lambda: api.get(f"/apps/{app['id']}/push-groups/{eng_id}").status_code == 404)
    assert remote_members(scim, eng) == remote_ids(scim, f"ann.w{s}")
    assert "No group is pushed" in console.get(tab).text
