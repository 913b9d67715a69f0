"""Import and matching, orphans: accounts planted in a real scim2-server behind provisiond's back."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TARGET_TOKEN, assign, eventually, person, remote_user, scim_app
from tests.e2e.test_policy import policy_with
from tests.e2e.test_reconcile import enable, wait_run
from tests.support import bad_pager
from tests.support.servers import serve_app


def plant(scim: httpx.Client, user_name: str, **extra: Any) -> str:
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name}
    answer = scim.post("Users", json={**body, **extra})
    assert answer.status_code == 201, answer.text
    remote_id: str = answer.json()["id"]
    return remote_id


def edit_behind_our_back(scim: httpx.Client, remote_id: str, display_name: str) -> None:
    """Change an account in the app directly, as an app admin would."""
    body = {**scim.get(f"Users/{remote_id}").json(), "displayName": display_name}
    body.pop("meta", None)
    assert scim.put(f"Users/{remote_id}", json=body).status_code == 200


def finished_import(api: httpx.Client, app_id: str) -> dict[str, Any]:
    answer = api.post(f"/apps/{app_id}/import")
    assert answer.status_code == 202, answer.text
    started = answer.json()

    def done() -> dict[str, Any] | None:
        got: dict[str, Any] = api.get(f"/apps/{app_id}/imports/{started['id']}").json()
        assert got["status"] != "failed", got
        return got if got["status"] == "completed" else None

    result: dict[str, Any] = eventually(done)
    return result


def test_import_matches_links_and_finds_orphans(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    users = {
        name: api.post("/users", json=person(f"{name}.{tag}")).json()
        for name in ("ada", "bob", "cy", "dee", "dee2", "eve")
    }
    # dee and dee2 share an e-mail address: a match by e-mail would be a guess.
    for name in ("dee", "dee2"):
        profile = {**users[name]["profile"], "email": f"shared.{tag}@example.com"}
        assert (
            api.patch(f"/users/{users[name]['id']}", json={"profile": profile}).status_code == 200
        )
    app = api.post("/apps", json=scim_app(f"imp-{tag}", target)).json()
    for name in ("ada", "bob", "dee", "eve"):
        assign(api, app["id"], "user", users[name]["id"])
    planted = {
        "ada": plant(scim, f"ADA.{tag}".upper()),  # userName, whatever its case
        "bob": plant(scim, f"robert-{tag}", externalId=users["bob"]["id"]),
        "cy": plant(scim, f"cy.{tag}"),  # linked, but cy is not assigned: an orphan
        "ghost": plant(scim, f"ghost-{tag}"),  # nobody's
        "dee?": plant(
            scim, f"d-{tag}", emails=[{"value": f"SHARED.{tag}@example.com", "primary": True}]
        ),
        "eve1": plant(scim, f"eve.{tag}"),
        "eve2": plant(scim, f"x-{tag}", emails=[{"value": f"eve.{tag}@example.com"}]),
    }
    done = finished_import(api, app["id"])
    assert done["accounts"] >= len(planted)
    by_remote = {}
    after = None
    while True:
        page = api.get(
            f"/apps/{app['id']}/app-accounts", params={"after": after} if after else {}
        ).json()
        by_remote.update({a["remote_id"]: a for a in page["items"]})
        if not page["next_cursor"]:
            break
        after = page["next_cursor"]
    mine = {name: by_remote[remote_id] for name, remote_id in planted.items()}
    assert mine["ada"]["match"] == "linked" and mine["ada"]["user_id"] == users["ada"]["id"]
    assert mine["bob"]["match"] == "linked" and mine["bob"]["rule"] == "externalId = id"
    assert mine["ghost"]["match"] == "unmatched"
    assert mine["dee?"]["match"] == "conflict"
    assert sorted(mine["dee?"]["candidates"]) == sorted([users["dee"]["id"], users["dee2"]["id"]])
    # Two accounts for eve (one by userName, one by e-mail): never both, and never a guess.
    assert {mine["eve1"]["match"], mine["eve2"]["match"]} == {"conflict"}
    # Linking wrote provisiond's accounts: the remote ids, nothing sent to the app.
    accounts = {a["user_id"]: a for a in api.get(f"/apps/{app['id']}/accounts").json()["items"]}
    assert accounts[users["ada"]["id"]]["remote_id"] == planted["ada"]
    assert scim.get(f"Users/{planted['ada']}").json()["userName"] == f"ADA.{tag}".upper()
    # ... and the preview shows the update the next reconcile will make.
    preview = api.post(f"/apps/{app['id']}/policy/preview", json={}).json()["changes"]
    ada_change = next(c for c in preview if c["user_id"] == users["ada"]["id"])
    assert ada_change["operation"] == "update"
    assert "userName" in {c["attribute"] for c in ada_change["changes"]}

    orphans = {
        o["account"]["remote_id"]: o for o in api.get(f"/apps/{app['id']}/orphans").json()["items"]
    }
    assert orphans[planted["ghost"]]["reason"] == "unlinked"
    assert orphans[planted["cy"]]["reason"] == "unassigned"
    assert planted["ada"] not in orphans
    # The access posture report counts them, and says where they are dealt with.
    (orphaned,) = [f for f in api.get("/reports/posture").json()["findings"]
                   if f["kind"] == "orphans" and f["app_id"] == app["id"]]
    assert orphaned["count"] == len(orphans) and orphaned["api"].endswith("/orphans")
    # Ignore the ghost (with why); deactivate cy's account through a run.
    ghost_id = orphans[planted["ghost"]]["account"]["id"]
    answer = api.post(f"/apps/{app['id']}/orphans/ignore", json={"ids": [ghost_id], "note": "svc"})
    assert answer.status_code == 200, answer.text
    cy_id = orphans[planted["cy"]]["account"]["id"]
    run = api.post(
        f"/apps/{app['id']}/orphans/deprovision", json={"ids": [cy_id], "action": "deactivate"}
    )
    assert run.status_code == 202, run.text
    eventually(lambda: scim.get(f"Users/{planted['cy']}").json().get("active") is False, timeout=30)
    eventually(lambda: api.get(f"/runs/{run.json()['id']}").json()["status"] == "succeeded")
    left = {
        o["account"]["remote_id"] for o in api.get(f"/apps/{app['id']}/orphans").json()["items"]
    }
    assert planted["ghost"] not in left

    # An account the app no longer holds is gone only once an import completes without it.
    assert scim.delete(f"Users/{planted['ghost']}").status_code == 204
    again = finished_import(api, app["id"])
    assert again["counts"]["gone"] >= 1
    gone = api.get(f"/apps/{app['id']}/app-accounts").json()["items"]
    assert planted["ghost"] not in {a["remote_id"] for a in gone}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the store matters little here
def test_pending_matches_wait_for_an_admin(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    ada = api.post("/users", json=person(f"ada.{tag}")).json()
    bob = api.post("/users", json=person(f"bob.{tag}")).json()
    app = api.post(
        "/apps",
        json=scim_app(
            f"pend-{tag}", target, imports={"auto_link": False}, features={"push_groups": True}
        ),
    ).json()
    ada_remote = plant(scim, f"ada.{tag}")
    bob_remote = plant(scim, f"bob.{tag}")
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": f"g-{tag}"}
    assert scim.post("Groups", json=group).status_code == 201
    done = finished_import(api, app["id"])
    assert done["groups"] >= 1  # the app pushes groups: they are read too
    pending = {
        a["remote_id"]: a
        for a in api.get(f"/apps/{app['id']}/app-accounts", params={"match": "pending"}).json()[
            "items"
        ]
    }
    assert pending[ada_remote]["user_id"] == ada["id"]
    assert api.get(f"/apps/{app['id']}/accounts").json()["items"] == []  # nothing linked yet
    confirm = api.post(
        f"/apps/{app['id']}/matches/confirm", json={"ids": [pending[ada_remote]["id"]]}
    )
    assert confirm.json() == {"count": 1}
    reject = api.post(
        f"/apps/{app['id']}/matches/reject", json={"ids": [pending[bob_remote]["id"]], "note": "no"}
    )
    assert reject.json() == {"count": 1}
    again = api.post(
        f"/apps/{app['id']}/matches/confirm", json={"ids": [pending[bob_remote]["id"]]}
    )
    assert again.status_code == 409
    accounts = api.get(f"/apps/{app['id']}/accounts").json()["items"]
    assert [(a["user_id"], a["remote_id"]) for a in accounts] == [(ada["id"], ada_remote)]
    # A rejected match stays rejected through the next import.
    finished_import(api, app["id"])
    rejected = api.get(f"/apps/{app['id']}/app-accounts", params={"match": "rejected"}).json()
    assert [a["remote_id"] for a in rejected["items"]] == [bob_remote]
    assert bob["id"] not in {
        a["user_id"] for a in api.get(f"/apps/{app['id']}/accounts").json()["items"]
    }


def test_a_target_that_pages_wrongly_and_an_import_interrupted_halfway(api: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:6]
    dup = api.post("/users", json=person(f"dup.{tag}")).json()
    mail = api.post("/users", json=person(f"mail.{tag}")).json()
    accounts = [bad_pager.account(f"r{i:03}", f"u{i}.{tag}") for i in range(30)]
    accounts += [
        bad_pager.account("dup-1", f"dup.{tag}"),  # two accounts, one userName: a conflict
        bad_pager.account("dup-2", f"DUP.{tag}"),
        # No userName: matched by its primary e-mail.
        bad_pager.account(
            "no-name", emails=[{"value": f"mail.{tag}@example.com", "primary": True}]
        ),
        bad_pager.account("ü ñ é", f"odd.{tag}"),  # odd, but one harmless path segment
        bad_pager.account("../x?y", f"evil.{tag}"),  # never stored: it would leave the path
    ]
    pager = bad_pager.BadPager(
        TARGET_TOKEN, accounts, page=7, overlap=2, total=None, fail_at=3, fail_times=1
    )
    with serve_app(pager) as url:
        app = api.post("/apps", json=scim_app(f"pager-{tag}", url + "/v2")).json()
        done = finished_import(api, app["id"])
        assert done["attempts"] == 2  # the 503 halfway: started again from the first page
        assert done["accounts"] == len(accounts) and done["repeated"] > 0  # listed, skipped too
        assert done["counts"]["skipped"] == 1
        rows = {
            a["remote_id"]: a for a in api.get(f"/apps/{app['id']}/app-accounts").json()["items"]
        }
        assert "../x?y" not in rows and rows["ü ñ é"]["user_name"] == f"odd.{tag}"
        assert rows["dup-1"]["match"] == rows["dup-2"]["match"] == "conflict"
        assert rows["dup-1"]["candidates"] == [dup["id"]]
        assert rows["no-name"]["match"] == "linked" and rows["no-name"]["user_id"] == mail["id"]

        # An import that fails for good marks nothing gone and links nothing new.
        pager.accounts = accounts[5:]
        pager.fail_times = 99
        failed = api.post(f"/apps/{app['id']}/import").json()
        eventually(
            lambda: (
                api.get(f"/apps/{app['id']}/imports/{failed['id']}").json()["status"] == "failed"
            )
        )
        still = {a["remote_id"] for a in api.get(f"/apps/{app['id']}/app-accounts").json()["items"]}
        assert still == set(rows)
        pager.fail_times = 0
        # Retrying its dead task runs the failed import again, from the first page.
        (dead,) = api.get("/tasks", params={"status": "dead", "app": app["id"]}).json()["items"]
        assert api.post(f"/tasks/{dead['id']}/retry").status_code == 200
        eventually(
            lambda: (
                api.get(f"/apps/{app['id']}/imports/{failed['id']}").json()["status"] == "completed"
            )
        )
        after = {a["remote_id"] for a in api.get(f"/apps/{app['id']}/app-accounts").json()["items"]}
        assert after == set(rows) - {f"r{i:03}" for i in range(5)}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the store matters little here
def test_drift_is_recorded_then_corrected_or_only_reported(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    app = api.post("/apps", json=scim_app(f"drift-{tag}", target)).json()
    enable(api, app["id"])
    ada = api.post("/users", json=person(f"ada.{tag}")).json()
    assign(api, app["id"], "user", ada["id"])
    remote = eventually(lambda: remote_user(scim, f"ada.{tag}"))

    def full_sync() -> list[dict[str, Any]]:
        run = api.post(f"/apps/{app['id']}/sync").json()
        wait_run(api, run["id"])
        items: list[dict[str, Any]] = api.get(f"/apps/{app['id']}/drift").json()["items"]
        return items

    edit_behind_our_back(scim, remote["id"], "Someone Else")
    (found,) = full_sync()
    assert found["user_id"] == ada["id"]
    (entry,) = found["drift"]
    assert entry["attribute"] == "displayName" and entry["found"] == "Someone Else"
    assert entry["applied"] == entry["desired"] == f"Ada {tag.title()}"
    # correct (the default): the policy's value is sent again.
    assert scim.get(f"Users/{remote['id']}").json()["displayName"] == entry["desired"]
    assert full_sync() == []  # and the next full reconcile finds nothing
    # report: recorded and shown, nothing sent, still shown at the next full reconcile.
    enable(api, app["id"], imports={"drift": "report"})
    edit_behind_our_back(scim, remote["id"], "Changed Again")
    (reported,) = full_sync()
    assert reported["drift"][0]["found"] == "Changed Again"
    (drifted,) = [f for f in api.get("/reports/posture").json()["findings"]
                  if f["kind"] == "drifted_accounts" and f["app_id"] == app["id"]]
    assert drifted["count"] == 1
    assert scim.get(f"Users/{remote['id']}").json()["displayName"] == "Changed Again"
    assert full_sync()[0]["drift"][0]["found"] == "Changed Again"
    events = api.get("/logs", params={"action": "app.account.drift", "app": app["id"]}).json()
    assert len(events["items"]) >= 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the store matters little here
def test_deprovisioning_orphans_over_the_safety_limit_waits_for_approval(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    app = api.post("/apps", json=scim_app(f"held-{tag}", target)).json()
    limits = {"max_deprovisions": 1, "max_deprovision_percent": None}
    api.put(
        f"/apps/{app['id']}/policy", json=policy_with(api, app["id"], limits=limits)
    ).raise_for_status()
    strays = [plant(scim, f"stray{i}-{tag}") for i in range(2)]
    finished_import(api, app["id"])
    ids = [
        o["account"]["id"]
        for o in api.get(f"/apps/{app['id']}/orphans").json()["items"]
        if o["account"]["remote_id"] in strays
    ]
    run = api.post(
        f"/apps/{app['id']}/orphans/deprovision", json={"ids": ids, "action": "deactivate"}
    ).json()
    assert run["status"] == "held" and run["held"]["counts"]["deactivate"] == 2
    assert all(scim.get(f"Users/{r}").json().get("active", True) for r in strays)  # nothing sent
    approved = api.post(f"/runs/{run['id']}/approve")
    assert approved.status_code == 200, approved.text
    for remote_id in strays:
        eventually(lambda r=remote_id: scim.get(f"Users/{r}").json().get("active") is False)
    assert wait_run(api, run["id"])["counts"]["deactivated"] == 2
