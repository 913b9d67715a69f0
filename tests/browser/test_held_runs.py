"""Held runs in the console: a policy save over the limit is pending; its plan is shown; an
admin who manages the app cancels or approves it there (it was CLI only), others only see it."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import shot
from tests.e2e.conftest import eventually, remote_user
from tests.e2e.test_policy import policy_with, setup_app
from tests.web.conftest import PASSWORD, MakeAdmin

NARROW = 'user.department == "Engineering"'


def sign_in(page: Page, server: str, username: str) -> None:
    page.goto(f"{server}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def save_narrow_scope(page: Page, server: str, app_id: str) -> None:
    page.goto(f"{server}/apps/{app_id}/policy")
    page.get_by_role("textbox", name="Scope (CEL").fill(NARROW)
    page.get_by_role("button", name="Save policy").click()


def test_a_held_policy_is_reviewed_cancelled_and_approved_in_the_console(
    page: Page, server: str, api: httpx.Client, scim: httpx.Client, target: str,
    make_admin: MakeAdmin,
) -> None:
    app, users = setup_app(api, target, {f"r{i}": "Sales" for i in range(4)})
    logins = [u["profile"]["login"] for u in users.values()]
    api.put(f"/apps/{app['id']}/policy", json=policy_with(
        api, app["id"], limits={"max_deprovisions": 2, "max_deprovision_percent": None})).raise_for_status()
    make_admin("root")
    make_admin("viewer", "read_only")

    # Saving a policy that would deprovision all four: pending, and the run's page says so.
    sign_in(page, server, "root")
    save_narrow_scope(page, server, app["id"])
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]+$"))
    expect(page.get_by_role("status").first).to_contain_text("Not in force yet")
    expect(page.locator("#held-summary")).to_contain_text("deprovision 4 of 4 accounts")
    expect(page.get_by_role("table", name="Policy changes")).to_contain_text(NARROW)
    plan = page.get_by_role("table", name="Accounts it would deprovision")
    for login in logins:
        expect(plan).to_contain_text(login)
    shot(page, "held-run-pending-policy")
    first_run = page.url.rsplit("/", 1)[1]
    assert api.get(f"/apps/{app['id']}/policy").json()["pending"]["run_id"] == first_run

    # The policy tab shows the pending save and links to it.
    page.goto(f"{server}/apps/{app['id']}/policy")
    expect(page.locator("#pending-policy")).to_contain_text("pending")
    page.get_by_role("link", name="Review the held run").click()
    expect(page).to_have_url(re.compile(rf"/runs/{first_run}$"))

    # Cancel: nothing deprovisioned, the pending policy discarded, version 1 still in force.
    page.get_by_role("button", name="Cancel: deprovision nothing").click()
    expect(page.get_by_role("status").first).to_contain_text("The pending policy was discarded")
    expect(page.get_by_role("heading", level=1)).to_contain_text("cancelled")
    expect(page.get_by_role("button", name=re.compile("Approve"))).to_have_count(0)
    policy = api.get(f"/apps/{app['id']}/policy").json()
    assert (policy["version"], policy["scope"], policy["pending"]) == (1, None, None)

    # Saved again; a read-only admin sees the held run and its plan, but no forms.
    save_narrow_scope(page, server, app["id"])
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]+$"))
    second_run = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, server, "viewer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    held = page.get_by_role("table", name="Held runs")
    expect(held).to_contain_text(app["name"])
    held.get_by_role("link", name=app["name"]).click()
    expect(page).to_have_url(re.compile(rf"/runs/{second_run}$"))
    expect(page.get_by_role("table", name="Accounts it would deprovision")).to_contain_text(logins[0])
    expect(page.get_by_role("button", name=re.compile("Approve|Cancel"))).to_have_count(0)
    expect(page.get_by_text("Only an admin who manages this app")).to_be_visible()
    assert all(remote_user(scim, login)["active"] for login in logins)

    # The admin approves: the policy is in force and the four are deprovisioned.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, server, "root")
    page.goto(f"{server}/runs/{second_run}")
    page.get_by_role("button", name="Approve: deprovision 4 accounts").click()
    expect(page.get_by_role("status").first).to_contain_text("Policy version 2 is now in force")
    shot(page, "held-run-approved")
    eventually(lambda: not any(remote_user(scim, login)["active"] for login in logins))
    policy = api.get(f"/apps/{app['id']}/policy").json()
    assert (policy["version"], policy["scope"], policy["pending"]) == (2, NARROW, None)
