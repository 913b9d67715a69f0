"""The administrator's whole path in a real browser, against a real scim2-server."""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import shot
from tests.e2e.conftest import TARGET_TOKEN, eventually, person, remote_user
from tests.support.remote_groups import remote_group
from tests.web.conftest import PASSWORD, MakeAdmin


def test_the_administrators_path_ends_with_an_account_deactivated(
    page: Page,
    server: str,
    api: httpx.Client,
    scim: httpx.Client,
    target: str,
    make_admin: MakeAdmin,
) -> None:
    suffix = str(time.monotonic_ns())[-6:]
    ada = api.post("/users", json=person(f"ada.b{suffix}", department="Engineering")).json()
    bob = api.post("/users", json=person(f"bob.b{suffix}", department="Engineering")).json()
    group = api.post("/groups", json={"name": "Engineering"}).json()
    for user in (ada, bob):
        api.put(f"/groups/{group['id']}/users/{user['id']}").raise_for_status()
    make_admin("root")

    # Sign in.
    page.goto(f"{server}/apps")
    expect(page).to_have_url(re.compile(r"/login\?next=/apps"))
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()

    # Applications -> Add application.
    page.get_by_role("link", name="Add application").click()
    page.get_by_label("Name", exact=False).first.fill("wiki")
    page.get_by_label("Label").fill("Team Wiki")
    page.get_by_label("SCIM base URL").fill(target)
    page.get_by_label("Method").select_option("bearer")
    page.get_by_label("Bearer token").fill(TARGET_TOKEN)
    shot(page, "01-add-application")
    page.get_by_role("button", name="Add application").click()

    # Provisioning tab: test the connection, enable with the features, see the result.
    expect(page.get_by_role("heading", name="Connector")).to_be_visible()
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".test-result")).to_contain_text("Passed")
    page.get_by_role("switch", name="Provisioning enabled").check()
    expect(page.get_by_label("Create users")).to_be_checked()
    page.get_by_label("When someone leaves").select_option("deactivate")
    page.get_by_label("Push groups").check()
    page.get_by_role("button", name="Save provisioning settings").click()
    expect(page.get_by_role("status").first).to_contain_text("Provisioning settings saved")
    expect(page.get_by_role("switch", name="Provisioning enabled")).to_be_checked()
    shot(page, "02-provisioning")

    # Roles: define the editor role (a SCIM roles value, by default).
    page.get_by_role("navigation", name="Application").get_by_role("link", name="Roles").click()
    page.get_by_label("Name").fill("editor")
    page.get_by_role("button", name="Define role").click()
    expect(page.get_by_role("table")).to_contain_text("editor")

    # Assignments: the group, with a role and a priority.
    page.get_by_role("navigation", name="Application").get_by_role(
        "link", name="Assignments"
    ).click()
    page.get_by_role("radio", name="Group").check()
    page.get_by_role("combobox", name="Group").select_option(label="Engineering")
    page.get_by_label("Role").select_option(label="editor")
    page.get_by_label("Priority").fill("10")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.get_by_role("table")).to_contain_text("Engineering")
    expect(page.get_by_role("table")).to_contain_text("editor")
    shot(page, "03-assignments")

    # Groups: push Engineering; the wiki gets a group of that name holding its members.
    page.get_by_role("navigation", name="Application").get_by_role("link", name="Groups").click()
    page.get_by_label("Directory group").select_option(label="Engineering")
    page.get_by_role("button", name="Push group").click()
    expect(page.get_by_role("status").first).to_contain_text("Pushing Engineering")
    expect(page.get_by_role("table")).to_contain_text("Engineering")
    engineers = eventually(lambda: remote_group(scim, "Engineering"), timeout=60)
    eventually(
        lambda: len((remote_group(scim, "Engineering") or {}).get("members") or []) == 2,
        timeout=15,
    )
    assert engineers["displayName"] == "Engineering"
    page.reload()
    expect(page.get_by_role("table")).to_contain_text("active")
    shot(page, "03b-pushed-groups")

    # Policy: edit, preview the dry run as a diff, save.
    page.get_by_role("navigation", name="Application").get_by_role("link", name="Policy").click()
    if page.get_by_label("Mappings", exact=False).count():
        mappings = page.get_by_label("Mappings", exact=False)
        mappings.fill(mappings.input_value() + '\ntitle = user.department + " team"')
        page.get_by_role("button", name="Preview (dry run)").click()
        expect(page.get_by_role("heading", name="Dry run of this draft")).to_be_visible()
        expect(page.locator("table.diff").first).to_contain_text("mappings.title")
        shot(page, "04-policy-preview")
        page.get_by_role("button", name="Save policy").click()
        expect(page.get_by_role("status").first).to_contain_text("Policy saved as version 1")

    # Accounts: each user's account, status and last sync.
    eventually(lambda: remote_user(scim, f"ada.b{suffix}"), timeout=60)
    page.get_by_role("navigation", name="Application").get_by_role("link", name="Accounts").click()
    row = page.locator(f'tr[data-login="ada.b{suffix}"]')
    expect(row).to_contain_text("active")
    shot(page, "05-accounts")
    page.get_by_role("navigation", name="Application").get_by_role("link", name="Activity").click()
    expect(page.locator("table.events")).to_contain_text("app.user.provision")

    # Directory: Ada leaves; Deactivate, confirmed, and her account is deactivated in the app.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    page.get_by_label("Login contains").fill(f"ada.b{suffix}")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=f"ada.b{suffix}").click()
    page.get_by_role("button", name="Deactivate", exact=True).click()
    expect(page.locator("#confirm-summary")).to_contain_text("deprovisions 1 account")
    page.get_by_role("button", name=f"Deactivate ada.b{suffix}").click()
    expect(page.get_by_role("status").first).to_contain_text("deprovisioned")
    eventually(lambda: remote_user(scim, f"ada.b{suffix}")["active"] is False, timeout=60)
    assert remote_user(scim, f"bob.b{suffix}")["active"] is True
    bob_id = remote_user(scim, f"bob.b{suffix}")["id"]
    eventually(  # and out of the wiki's Engineering group
        lambda: {m["value"] for m in remote_group(scim, "Engineering")["members"]} == {bob_id},
        timeout=10,
    )
    page.reload()
    expect(page.locator("section", has_text="Accounts in applications")).to_contain_text(
        "deactivated"
    )
    shot(page, "06-user-deactivated")

    # Tasks, the activity log with its live tail, and the dashboard's charts.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    shot(page, "07-tasks")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Activity log").click()
    page.get_by_label("Live tail", exact=False).check()
    api.post("/groups", json={"name": "Live tail"}).raise_for_status()
    expect(page.locator("tr.fresh").first).to_contain_text("group.lifecycle.create")
    expect(page.locator("table.events")).to_contain_text("admin:root")
    shot(page, "08-activity-log")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.locator('[data-figure="provisioned"]')).to_have_text("1")
    expect(
        page.get_by_role("img", name=re.compile("Deprovisioning latency of wiki"))
    ).to_be_visible()
    shot(page, "09-dashboard")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing needs a wide screen
    shot(page, "10-dashboard-narrow")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to provisiond")).to_be_visible()
