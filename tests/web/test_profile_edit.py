"""Editing a user's profile in the console: the API's validation, beside each field; a refused
edit changes nothing (real server, SQLite and PostgreSQL)."""

from __future__ import annotations

import html
import re
import time

import httpx

from tests.e2e.conftest import person
from tests.web.conftest import MakeAdmin, post_form, sign_in


def _error(page: str, name: str) -> str:
    match = re.search(rf'<p class="error" id="{name}-error">([^<]*)</p>', page)
    return html.unescape(match.group(1)) if match else ""


def _form(profile: dict[str, str], **changes: str) -> dict[str, str]:
    fields = ("login", "email", "firstName", "lastName", "displayName", "department", "title",
              "manager", "employeeNumber", "employeeType")
    return {name: changes.get(name, profile.get(name, "")) for name in fields}


def test_edit_a_profile_with_the_apis_validation(
    console: httpx.Client, api: httpx.Client
) -> None:
    s = str(time.monotonic_ns())[-8:]
    user = api.post("/users", json=person(f"kim.e{s}", department="Ops", badge="B-7")).json()
    api.post("/users", json=person(f"taken.e{s}")).raise_for_status()
    profile = user["profile"]
    edit = f"/directory/users/{user['id']}/edit"
    page = console.get(edit)
    assert page.status_code == 200 and f'value="kim.e{s}"' in page.text
    assert "badge" in page.text  # a custom attribute, shown and kept

    # Refused, each beside its field, nothing saved.
    bad = post_form(console, edit, edit, _form(profile, email="not-an-email", firstName=""))
    assert bad.status_code == 422
    assert "email" in _error(bad.text, "email") and _error(bad.text, "firstName")
    assert 'value="not-an-email"' in bad.text  # what was typed is kept
    taken = post_form(console, edit, edit, _form(profile, login=f"taken.e{s}"))
    assert taken.status_code == 422 and "taken" in _error(taken.text, "login")
    spaced = post_form(console, edit, edit, _form(profile, login="has space"))
    assert spaced.status_code == 422 and "white space" in _error(spaced.text, "login")
    assert api.get(f"/users/{user['id']}").json()["profile"] == profile

    # Saved: a change, an optional attribute added and one removed; the custom one kept.
    saved = post_form(
        console, edit, edit, _form(profile, lastName="Nakamura", title="Lead", department="")
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"/directory/users/{user['id']}"
    now = api.get(f"/users/{user['id']}").json()["profile"]
    assert now["lastName"] == "Nakamura" and now["title"] == "Lead" and now["badge"] == "B-7"
    assert "department" not in now
    assert "Saved the profile" in console.get(f"/directory/users/{user['id']}").text


def test_only_directory_writers_may_edit(
    server: str, api: httpx.Client, make_admin: MakeAdmin
) -> None:
    s = str(time.monotonic_ns())[-8:]
    user = api.post("/users", json=person(f"lee.e{s}")).json()
    make_admin(f"desk{s}", "help_desk")
    with sign_in(server, f"desk{s}") as desk:
        page = desk.get(f"/directory/users/{user['id']}")
        assert "Edit profile" not in page.text
        assert desk.get(f"/directory/users/{user['id']}/edit").status_code == 403
        denied = post_form(desk, "/", f"/directory/users/{user['id']}/edit",
                           _form(user["profile"], title="x"))
        assert denied.status_code == 403
    assert "title" not in api.get(f"/users/{user['id']}").json()["profile"]
