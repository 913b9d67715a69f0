"""Destructive console actions ask first, with what they will do counted by the preview the API
uses; the action itself is only done by the confirming form (real server, real scim2-server,
SQLite and PostgreSQL)."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import httpx

from provisiond.runtime import Runtime
from provisiond.store.tables import Task
from tests.e2e.conftest import assign, eventually, person, remote_user, scim_app
from tests.web.conftest import post_form


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def confirm_form(page: str) -> dict[str, str]:
    """The hidden fields of the confirm page's form, as a browser would post them."""
    form = re.search(r'<form method="post" action="[^"]+" class="actions">(.*?)</form>', page, re.S)
    assert form, page
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(1)))


def _world(api: httpx.Client, target: str) -> dict[str, Any]:
    """An enabled app, a group of three assigned to it, and ann also assigned directly."""
    s = str(time.monotonic_ns())[-8:]
    app = api.post("/apps", json=scim_app(f"confirm-{s}", target)).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    settings.pop("last_test", None)
    api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}).raise_for_status()
    logins = [f"ann.c{s}", f"bob.c{s}", f"cy.c{s}"]
    ids = [api.post("/users", json=person(login)).json()["id"] for login in logins]
    group = api.post("/groups", json={"name": f"Sales {s}"}).json()
    for user_id in ids:
        api.put(f"/groups/{group['id']}/users/{user_id}").raise_for_status()
    by_group = assign(api, app["id"], "group", group["id"])
    assign(api, app["id"], "user", ids[0])

    def provisioned() -> bool:
        items = api.get(f"/apps/{app['id']}/accounts").json()["items"]
        return sorted(a["status"] for a in items) == ["active"] * 3

    eventually(provisioned, timeout=30)
    return {"app": app, "logins": logins, "ids": ids, "group": group, "assignment": by_group}


def test_unassigning_a_group_says_how_many_accounts_it_deprovisions_and_waits_for_yes(
    console: httpx.Client, api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    world = _world(api, target)
    app, (ann, bob, cy) = world["app"], world["logins"]
    tab = f"/apps/{app['id']}/assignments"
    action = f"{tab}/{world['assignment']['id']}/delete"

    # The Unassign button's post shows the confirm page: ann keeps her direct assignment.
    asked = post_form(console, tab, action, {})
    assert asked.status_code == 200, asked.text
    said = text_of(asked.text)
    assert f"Unassigning group {world['group']['name']} deprovisions 2 accounts" in said
    assert bob in said and cy in said and ann not in said
    # Nothing was done: the assignment is there and every account active.
    assert len(api.get(f"/apps/{app['id']}/assignments").json()["items"]) == 2
    assert (remote_user(scim, bob) or {}).get("active") is True

    # A forged confirmation without the session's CSRF token is refused.
    forged = console.post(action, data={"confirmed": "yes"})
    assert forged.status_code == 403
    assert len(api.get(f"/apps/{app['id']}/assignments").json()["items"]) == 2

    # The confirm page's own form does it.
    done = console.post(action, data=confirm_form(asked.text))
    assert done.status_code == 303
    assert len(api.get(f"/apps/{app['id']}/assignments").json()["items"]) == 1
    eventually(lambda: (remote_user(scim, bob) or {}).get("active") is False, timeout=30)
    eventually(lambda: (remote_user(scim, cy) or {}).get("active") is False, timeout=30)
    assert (remote_user(scim, ann) or {}).get("active") is True


def test_deactivating_and_deleting_a_user_ask_first(
    console: httpx.Client, api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    world = _world(api, target)
    ann, ann_id = world["logins"][0], world["ids"][0]
    page = f"/directory/users/{ann_id}"
    deactivate = f"{page}/lifecycle/deactivate"

    asked = post_form(console, page, deactivate, {})
    assert asked.status_code == 200
    assert f"Deactivating {ann} deprovisions 1 account" in text_of(asked.text)
    assert api.get(f"/users/{ann_id}").json()["status"] == "active"

    # Suspending is not destructive here: it is done at once, as before.
    assert post_form(console, page, f"{page}/lifecycle/suspend", {}).status_code == 303
    assert api.get(f"/users/{ann_id}").json()["status"] == "suspended"

    assert console.post(deactivate, data=confirm_form(asked.text)).status_code == 303
    assert api.get(f"/users/{ann_id}").json()["status"] == "deprovisioned"
    eventually(lambda: (remote_user(scim, ann) or {}).get("active") is False, timeout=30)

    # Deleting the deprovisioned user asks too; then the user is gone.
    delete = f"{page}/delete"
    asked = post_form(console, page, delete, {})
    assert asked.status_code == 200 and f"Delete {ann}?" in text_of(asked.text)
    assert api.get(f"/users/{ann_id}").status_code == 200
    assert console.post(delete, data=confirm_form(asked.text)).status_code == 303
    assert api.get(f"/users/{ann_id}").status_code == 404


def test_dismissing_a_task_asks_first(
    console: httpx.Client, api: httpx.Client, runtime: Runtime, target: str
) -> None:
    s = str(time.monotonic_ns())[-8:]
    app = api.post("/apps", json=scim_app(f"dismiss-{s}", target)).json()
    user = api.post("/users", json=person(f"dee.d{s}")).json()
    with runtime.db.session() as session:
        task = Task(app_id=app["id"], kind="user", subject_id=user["id"], reason="t",
                    status="dead", correlation_id="c", last_error="HTTP 400: no")
        session.add(task)
        session.flush()
        task_id = task.id
    page = "/tasks?status=dead"
    asked = post_form(console, page, f"/tasks/{task_id}/dismiss", {})
    assert asked.status_code == 200
    said = text_of(asked.text)
    assert f"Dismiss the task for dee.d{s}" in said and "HTTP 400: no" in said
    with runtime.db.session() as session:
        assert session.get(Task, task_id).status == "dead"  # type: ignore[union-attr]
    done = console.post(f"/tasks/{task_id}/dismiss", data=confirm_form(asked.text))
    assert done.status_code == 303
    with runtime.db.session() as session:
        assert session.get(Task, task_id).status == "dismissed"  # type: ignore[union-attr]

