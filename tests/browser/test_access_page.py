"""Admins & tokens in a real browser: make a token (shown once), revoke it, disable an admin."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import shot
from tests.web.conftest import PASSWORD, MakeAdmin


def test_a_super_admin_makes_and_revokes_a_token_and_disables_an_admin(
    page: Page, server: str, make_admin: MakeAdmin
) -> None:
    make_admin("root")
    make_admin("ops", role="read_only")
    page.goto(f"{server}/login")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Admins & tokens").click()
    expect(page.get_by_role("heading", name="Admins & tokens")).to_be_visible()

    page.get_by_label("Name").fill("grafana")
    page.get_by_label("Role", exact=True).select_option("read_only")
    page.get_by_label("Expires after (days)").fill("30")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("status")).to_contain_text("Copy it now")
    secret = page.locator("#new-token").inner_text()
    shot(page, "access-new-token")
    with httpx.Client(
        base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {secret}"}
    ) as api:
        assert api.get("/users").status_code == 200
        page.get_by_role("button", name="Revoke token grafana").click()
        expect(page.get_by_role("status")).to_contain_text("Token revoked")
        assert api.get("/users").status_code == 401

    page.get_by_role("button", name="Disable ops").click()
    expect(page.get_by_role("status")).to_contain_text("Admin disabled")
    expect(page.get_by_role("button", name="Enable ops")).to_be_visible()
    page.get_by_role("button", name="Disable root").click()
    expect(page.get_by_role("status")).to_contain_text("last active super_admin")
    shot(page, "access-refused")
