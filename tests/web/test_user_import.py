"""The Users page's CSV import: upload, preview with bad rows by line, confirm before
deactivating, apply with live counts; and the export (real server, SQLite)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.e2e.conftest import eventually
from tests.web.conftest import csrf_of, post_form


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # tests/e2e has both stores
def test_upload_preview_confirm_and_apply(console: httpx.Client, api: httpx.Client) -> None:
    s = str(time.monotonic_ns())[-8:]
    api.post("/users", json={"profile": {"login": f"old.{s}", "email": "o@example.com",
                                         "firstName": "O", "lastName": "Ld"}}).raise_for_status()
    users = console.get("/directory/users")
    assert 'href="/directory/imports"' in users.text and 'href="/directory/users.csv"' in users.text

    def upload(body: str, **fields: str) -> httpx.Response:
        token = csrf_of(console.get("/directory/imports").text)
        return console.post("/directory/imports", data={"csrf_token": token, **fields},
                            files={"file": ("people.csv", body.encode(), "text/csv")})

    bad = upload(f"Login,Mail,firstName,lastName\nnew.{s},nope,N,Ew\n",
                 mapping="Login=login\nMail=email")
    assert bad.status_code == 303
    page = console.get(bad.headers["location"]).text
    assert "line 2: email:" in page and "Nothing can be applied" in page
    assert "/apply" not in page

    good = upload(f"login,email,firstName,lastName\nnew.{s},n@example.com,N,Ew\n",
                  deactivate_missing="on")
    plan = good.headers["location"]
    page = console.get(plan).text
    planned = dict(re.findall(r"<tr><td>(\w+)</td><td>(\d+)</td>", page))
    assert planned["create"] == "1" and int(planned["deactivate"]) >= 1
    # Deactivating asks first: the first post shows the confirm page and changes nothing.
    asked = post_form(console, plan, plan + "/apply", {})
    assert asked.status_code == 200 and "deactivates" in asked.text
    assert api.get("/users", params={"q": f"old.{s}"}).json()["items"][0]["status"] == "active"
    done = post_form(console, plan, plan + "/apply", {"confirmed": "yes"})
    assert done.status_code == 303

    def finished() -> bool:
        text = console.get(plan).text
        return "badge-succeeded" in text
    eventually(finished, timeout=60)
    assert api.get("/users", params={"q": f"old.{s}"}).json()["items"][0]["status"] == "deprovisioned"
    assert api.get("/users", params={"q": f"new.{s}"}).json()["items"][0]["status"] == "active"

    exported = console.get("/directory/users.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert f"new.{s},active,n@example.com,N,Ew" in exported.text
