"""CSV import of users over HTTP: a plan first, then applied through the directory services,
so a user it puts in an assigned group is provisioned, and one it deactivates is deprovisioned."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.e2e.conftest import eventually, remote_user
from tests.e2e.test_groups import assign, enabled_app

HEADER = "login,email,firstName,lastName,Cost centre,groups\r\n"


def upload(api: httpx.Client, body: str, **params: Any) -> dict[str, Any]:
    answer = api.post("/imports", content=body.encode(), params=params,
                      headers={"Content-Type": "text/csv"})
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def applied(api: httpx.Client, import_id: str) -> dict[str, Any]:
    answer = api.post(f"/imports/{import_id}/apply")
    assert answer.status_code == 202, answer.text
    done: dict[str, Any] = eventually(
        lambda: (found := api.get(f"/imports/{import_id}").json())["status"] != "applying"
        and found,
        timeout=60,
    )
    return done


def test_a_file_is_planned_then_applied_and_reaches_the_apps(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    app = enabled_app(api, target, f"csv-{suffix}")
    staff = api.post("/groups", json={"name": f"Staff {suffix}"}).json()
    assign(api, app, staff)
    kept = api.post("/users", json={"profile": {
        "login": f"kept.{suffix}", "email": "k@example.com", "firstName": "K", "lastName": "Ept",
    }}).json()
    mapping = '{"Cost centre": "costCentre"}'

    # A bad file: every bad row with its line, and nothing applied.
    bad = upload(api, HEADER
                 + f"ada.{suffix},ada@example.com,Ada,Lovelace,C1,Staff {suffix}\r\n"
                 + f"bob.{suffix},not-an-email,Bob,Babbage,C2,\r\n"
                 + f'"cy.{suffix}","cy@example.com","Cy\r\nMulti","Line",C3,Nobody\r\n'
                 + f"ada.{suffix},ada2@example.com,Ada,Again,C1,\r\n", mapping=mapping)
    assert bad["status"] == "invalid"
    assert [(e["line"], e["message"].split(":")[0]) for e in bad["errors"]] == [
        (3, "email"), (4, "groups"), (6, "login 'ada." + suffix + "' is on line 2 already")
    ]
    latin1 = api.post("/imports", content="login,email\r\nren\xe9,r@x.org\r\n".encode("latin-1"),
                      headers={"Content-Type": "text/csv"}).json()
    assert latin1["status"] == "invalid" and latin1["errors"][0]["message"] == "the file is not UTF-8 text"
    refused = api.post(f"/imports/{bad['id']}/apply")
    assert refused.status_code == 409 and "invalid" in refused.json()["detail"]
    assert api.get("/users", params={"q": f"ada.{suffix}"}).json()["items"] == []

    # A good file: planned, then applied with live counts; the group provisions Ada.
    good = upload(api, HEADER
                  + f"ada.{suffix},ada@example.com,Ada,Lovelace,C1,Staff {suffix}\r\n"
                  + f"kept.{suffix},k@example.com,K,Ept,C9,\r\n", mapping=mapping)
    assert good["status"] == "ready"
    assert good["planned"] == {"create": 1, "update": 1, "unchanged": 0, "deactivate": 0,
                               "invalid": 0}
    assert api.get("/users", params={"q": f"ada.{suffix}"}).json()["items"] == []  # a plan only
    done = applied(api, good["id"])
    assert done["status"] == "succeeded" and done["applied"] == done["total"] == 2
    assert done["done"]["create"] == 1 and done["done"]["update"] == 1
    assert api.get(f"/users/{kept['id']}").json()["profile"]["costCentre"] == "C9"
    eventually(lambda: remote_user(scim, f"ada.{suffix}"), timeout=60)

    # The export reads back as it was: importing it changes nothing.
    exported = api.get("/exports/users")
    assert exported.headers["content-type"].startswith("text/csv")
    ada_line = next(line for line in exported.text.splitlines() if line.startswith(f"ada.{suffix},"))
    assert ada_line.endswith(f",C1,Staff {suffix}")
    again = upload(api, exported.text)
    assert again["status"] == "ready" and again["planned"]["create"] == 0
    assert again["planned"]["update"] == 0, again
    api.delete(f"/imports/{again['id']}").raise_for_status()

    # Deactivating the users missing from a file deprovisions them downstream too.
    leaving = upload(api, HEADER + f"kept.{suffix},k@example.com,K,Ept,C9,\r\n",
                     mapping=mapping, deactivate_missing="true")
    assert leaving["planned"]["deactivate"] >= 1
    done = applied(api, leaving["id"])
    assert done["status"] == "succeeded", done
    ada = api.get("/users", params={"q": f"ada.{suffix}"}).json()["items"][0]
    assert ada["status"] == "deprovisioned"
    assert api.get(f"/users/{kept['id']}").json()["status"] == "active"
    eventually(lambda: (remote_user(scim, f"ada.{suffix}") or {}).get("active") is False,
               timeout=60)
