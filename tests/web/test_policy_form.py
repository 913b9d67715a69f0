"""The Policy tab shows every refused mapping beside its line, with the CEL position, and
saves nothing (real server, SQLite and PostgreSQL)."""

from __future__ import annotations

import html
import re
import time

import httpx

from provisiond.domain.policy import DEFAULT_MAPPINGS
from tests.e2e.conftest import assign, eventually, person, scim_app
from tests.web.conftest import post_form

BAD = (
    "userName = user.login\n"
    'title = user.departmnt + " team"\n'
    "name.givenName = user.firstName +\n"
    "displayName = user.lastName\n"
)


def _refusals(page: str) -> dict[str, str]:
    """``{attribute: text}`` of each refused mapping listed under the textarea."""
    found = re.findall(r'<li class="error" id="mapping-error-\d+" data-mapping="([^"]+)">(.*?)</li>',
                       page, re.S)
    return {html.unescape(a): " ".join(html.unescape(re.sub(r"<[^>]+>", " ", t)).split())
            for a, t in found}


def _form(mappings: str, action: str) -> dict[str, str]:
    return {"scope": "", "mappings": mappings, "deprovision_action": "inherit",
            "delete_after_days": "", "max_deprovisions": "", "max_deprovision_percent": "",
            "action": action}


def test_each_refused_mapping_is_shown_beside_its_line_with_its_position(
    console: httpx.Client, api: httpx.Client, target: str
) -> None:
    app = api.post("/apps", json=scim_app(f"pol-{time.monotonic_ns() % 10**8}", target)).json()
    tab = f"/apps/{app['id']}/policy"
    for action in ("save", "preview"):
        refused = post_form(console, tab, tab, _form(BAD, action))
        assert refused.status_code == 422, refused.text
        shown = _refusals(refused.text)
        assert set(shown) == {"title", "name.givenName"}, shown
        assert shown["title"].startswith("Line 2, title (column 14): unknown attribute")
        assert "at 1:6; did you mean 'user.department'?" in shown["title"]
        assert shown["name.givenName"].startswith("Line 3, name.givenName (column 34): syntax")
        assert "2 mappings refused" in refused.text
        # The draft is kept in the form, so it can be corrected.
        assert re.search(r'<textarea id="mappings"[^>]*>[^<]*user\.departmnt', refused.text)
    assert api.get(f"/apps/{app['id']}/policy").json()["version"] == 0  # nothing saved

    fixed = BAD.replace("departmnt", "department").replace("firstName +", "firstName")
    saved = post_form(console, tab, tab, _form(fixed, "save"))
    assert saved.status_code == 303
    assert api.get(f"/apps/{app['id']}/policy").json()["version"] == 1


def test_the_preview_prints_values_as_the_cli_does(
    console: httpx.Client, api: httpx.Client, target: str
) -> None:
    s = str(time.monotonic_ns())[-8:]
    app = api.post("/apps", json=scim_app(f"pv-{s}", target)).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    settings.pop("last_test", None)
    api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}).raise_for_status()
    user = api.post("/users", json=person(f"ida.p{s}", department="Ops")).json()
    assign(api, app["id"], "user", user["id"])
    eventually(
        lambda: [a["status"] for a in api.get(f"/apps/{app['id']}/accounts").json()["items"]]
        == ["active"],
        timeout=30,
    )
    tab = f"/apps/{app['id']}/policy"
    draft = "\n".join(f"{k} = {v}" for k, v in DEFAULT_MAPPINGS.items())
    draft += '\ntitle = user.department\nemails[type eq "work"].primary = false'
    page = post_form(console, tab, tab, _form(draft, "preview"))
    assert page.status_code == 200, page.text
    shown = html.unescape(page.text)
    # JSON, as `provisiond preview` prints it: null, "Ops", true -> false (not None, True).
    assert "<del>null</del> -> <ins>\"Ops\"</ins>" in shown
    assert re.search(r'<del>\[\{[^<]*"primary": true[^<]*</del> -> <ins>[^<]*"primary": false', shown)
    assert "True" not in shown and "None" not in shown
