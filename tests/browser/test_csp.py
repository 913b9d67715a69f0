"""The console works under its strict CSP: no page uses an inline script, style or handler."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.e2e.conftest import person, scim_app
from tests.web.conftest import PASSWORD, MakeAdmin

LDAP_APP = {
    "name": "legacy",
    "label": "Legacy",
    "connector": {
        "kind": "ldap",
        "url": "ldap://ldap.example.org",
        "bind_dn": "cn=provisiond,dc=example,dc=org",
        "bind_password": "not-used",
        "users_dn": "ou=people,dc=example,dc=org",
    },
}


def test_no_console_page_breaks_the_content_security_policy(
    page: Page, server: str, api: httpx.Client, target: str, make_admin: MakeAdmin
) -> None:
    app = api.post("/apps", json=scim_app("wiki", target)).json()
    # The LDAP form's checkboxes and selects are its own markup: checked under the CSP too.
    ldap = api.post("/apps", json=LDAP_APP).json()
    user = api.post("/users", json=person("csp.user")).json()
    group = api.post("/groups", json={"name": "Everyone"}).json()
    make_admin("root")
    violations: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", watch)
    page.goto(f"{server}/login")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # The stylesheet applies (a blocked one would leave the page unstyled).
    assert page.evaluate("document.styleSheets.length") >= 1
    assert page.evaluate("[...document.styleSheets].every(s => s.cssRules.length > 0)")
    for path in (
        "/apps",
        "/apps/new",
        "/apps/new?kind=ldap",
        "/apps/new?kind=postgresql",
        f"/apps/{app['id']}/provisioning",
        f"/apps/{ldap['id']}/provisioning",
        f"/apps/{app['id']}/assignments",
        f"/apps/{app['id']}/policy",
        "/directory/users",
        f"/directory/users/{user['id']}",
        f"/directory/groups/{group['id']}",
        "/directory/imports",
        "/tasks",
        "/activity",
    ):
        page.goto(server + path)
        page.wait_for_load_state("load")
    # The script runs: the live tail is console.js, and it fetches rows when switched on.
    with page.expect_response(re.compile(r"/activity/tail")):
        page.get_by_label("Live tail (new events appear at the top)").check()
    assert violations == []
