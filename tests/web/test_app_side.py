"""The Accounts tab's app side: start an import, see its progress, confirm a match, act on orphans."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.conftest import eventually, person, scim_app
from tests.e2e.test_import import plant
from tests.web.conftest import post_form


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_import_confirm_and_orphans_from_the_accounts_tab(
    console: httpx.Client, api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    ada = api.post("/users", json=person(f"ada.{tag}")).json()
    app = api.post(
        "/apps", json=scim_app(f"tab-{tag}", target, imports={"auto_link": False})
    ).json()
    plant(scim, f"ada.{tag}")
    ghost = plant(scim, f"ghost.{tag}")
    tab = f"/apps/{app['id']}/accounts"
    assert "Not imported yet" in console.get(tab).text and "No drift found" in console.get(tab).text
    started = post_form(console, tab, f"/apps/{app['id']}/import", {})
    assert started.status_code == 303
    page = eventually(lambda: (t := console.get(tab).text) and "Import completed" in t and t)
    assert "1 pending" in page and f"ada.{tag}" in page
    pending = api.get(f"/apps/{app['id']}/app-accounts", params={"match": "pending"}).json()[
        "items"
    ]
    done = post_form(
        console, tab, f"/apps/{app['id']}/matches", {"action": "confirm", "ids": pending[0]["id"]}
    )
    assert done.status_code == 303
    linked = api.get(f"/apps/{app['id']}/accounts").json()["items"]
    assert [a["user_id"] for a in linked] == [ada["id"]]
    orphan = next(
        o
        for o in api.get(f"/apps/{app['id']}/orphans").json()["items"]
        if o["account"]["remote_id"] == ghost
    )
    # Deleting asks first: the confirm page, then the run.
    asked = post_form(
        console,
        tab,
        f"/apps/{app['id']}/orphans",
        {"action": "delete", "ids": orphan["account"]["id"]},
    )
    assert asked.status_code == 200 and "Delete 1 orphan" in asked.text
    assert scim.get(f"Users/{ghost}").status_code == 200
    confirmed = post_form(
        console,
        tab,
        f"/apps/{app['id']}/orphans",
        {"action": "delete", "ids_joined": orphan["account"]["id"], "confirmed": "yes"},
    )
    assert confirmed.status_code == 303
    eventually(lambda: scim.get(f"Users/{ghost}").status_code == 404)
