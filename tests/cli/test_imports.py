"""``provisiond import``, ``matches`` and ``orphans`` against the real server and target."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.cli.conftest import Run, flat, ok
from tests.e2e.conftest import assign, eventually, person, remote_user, scim_app
from tests.e2e.test_import import edit_behind_our_back, plant
from tests.e2e.test_reconcile import enable


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_import_then_confirm_and_ignore(
    cli: Run, api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    app = f"cli-imp-{tag}"
    ada = api.post("/users", json=person(f"ada.{tag}")).json()
    assert (
        api.post("/apps", json=scim_app(app, target, imports={"auto_link": False})).status_code
        == 201
    )
    plant(scim, f"ada.{tag}")
    ghost = plant(scim, f"ghost.{tag}")
    done = flat(ok(cli("import", app)).stdout)
    assert "completed" in done and "1 pending" in done
    listed = json.loads(ok(cli("--json", "matches", "list", app)).stdout)
    assert [m["user_id"] for m in listed["items"]] == [ada["id"]]
    assert "linked 1 accounts" in ok(cli("matches", "confirm", app, "--all")).stdout
    assert "ghost" in flat(ok(cli("orphans", "list", app)).stdout)
    orphan = json.loads(ok(cli("--json", "orphans", "list", app)).stdout)["items"]
    ghost_row = next(o for o in orphan if o["account"]["remote_id"] == ghost)
    assert ghost_row["reason"] == "unlinked"
    ok(cli("orphans", "ignore", app, ghost_row["account"]["id"], "--note", "service account"))
    assert "ghost" not in flat(ok(cli("orphans", "list", app)).stdout)
    refused = cli("orphans", "ignore", app, "--note", "x")
    assert refused.exit_code != 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_drift_lists_what_changed_in_the_app(
    cli: Run, api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    app = api.post("/apps", json=scim_app(f"cli-drift-{tag}", target)).json()
    enable(api, app["id"])
    ada = api.post("/users", json=person(f"ada.{tag}")).json()
    assign(api, app["id"], "user", ada["id"])
    remote = eventually(lambda: remote_user(scim, f"ada.{tag}"))
    assert "no drift found" in ok(cli("drift", app["name"])).output
    edit_behind_our_back(scim, remote["id"], "Not Ada")
    enable(api, app["id"], imports={"drift": "report"})
    ok(cli("sync", app["name"]))
    shown = flat(ok(cli("drift", app["name"])).stdout)
    assert "displayName" in shown and '"Not Ada"' in shown and f"ada.{tag}" in shown
