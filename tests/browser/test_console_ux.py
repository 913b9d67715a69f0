"""Console pages in a real browser: a destructive action confirmed, the policy form's refused
mappings, a profile edited, the activity log by a user's name, and the dashboard at three apps."""

from __future__ import annotations

import time
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import shot
from tests.e2e.conftest import assign, eventually, person, remote_user, scim_app
from tests.web.conftest import PASSWORD, MakeAdmin


def _sign_in(page: Page, server: str, make_admin: MakeAdmin) -> None:
    make_admin("root")
    page.goto(f"{server}/login")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()


def _enabled_app(api: httpx.Client, name: str, target: str) -> dict[str, Any]:
    app: dict[str, Any] = api.post("/apps", json=scim_app(name, target)).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    settings.pop("last_test", None)
    api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}).raise_for_status()
    return app


def _active(api: httpx.Client, app_id: str, n: int) -> None:
    eventually(
        lambda: [a["status"] for a in api.get(f"/apps/{app_id}/accounts").json()["items"]]
        == ["active"] * n,
        timeout=30,
    )


def test_unassigning_a_group_is_confirmed_with_its_count(
    page: Page, server: str, api: httpx.Client, scim: httpx.Client, target: str,
    make_admin: MakeAdmin,
) -> None:
    s = str(time.monotonic_ns())[-6:]
    app = _enabled_app(api, f"crm-{s}", target)
    users = [api.post("/users", json=person(f"{n}.u{s}")).json() for n in ("ann", "bob")]
    group = api.post("/groups", json={"name": f"Support {s}"}).json()
    for user in users:
        api.put(f"/groups/{group['id']}/users/{user['id']}").raise_for_status()
    assign(api, app["id"], "group", group["id"])
    _active(api, app["id"], 2)

    _sign_in(page, server, make_admin)
    page.goto(f"{server}/apps/{app['id']}/assignments")
    page.get_by_role("button", name=f"Unassign {group['name']}").click()
    expect(page.get_by_role("heading", name=f"Unassign group {group['name']}")).to_be_visible()
    expect(page.locator("#confirm-summary")).to_contain_text("deprovisions 2 accounts")
    shot(page, "ux-01-confirm-unassign")
    # Cancel goes back and changes nothing.
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("button", name=f"Unassign {group['name']}")).to_be_visible()
    page.get_by_role("button", name=f"Unassign {group['name']}").click()
    page.get_by_role("button", name=f"Unassign group {group['name']}").click()
    expect(page.get_by_role("status").first).to_contain_text("Unassigned")
    eventually(lambda: (remote_user(scim, f"ann.u{s}") or {}).get("active") is False, timeout=30)


def test_the_policy_form_shows_each_refused_mapping(
    page: Page, server: str, api: httpx.Client, target: str, make_admin: MakeAdmin
) -> None:
    app = api.post("/apps", json=scim_app(f"pf-{str(time.monotonic_ns())[-6:]}", target)).json()
    _sign_in(page, server, make_admin)
    page.goto(f"{server}/apps/{app['id']}/policy")
    mappings = page.get_by_label("Mappings", exact=False)
    mappings.fill(
        mappings.input_value()
        + '\ntitle = user.departmnt + " team"\nnickName = user.firstName +'
    )
    page.get_by_role("button", name="Save policy").click()
    refused = page.get_by_role("list", name="Refused mappings")
    expect(refused.locator("li")).to_have_count(2)
    expect(refused.locator('li[data-mapping="title"]')).to_contain_text(
        "did you mean 'user.department'?"
    )
    expect(refused.locator('li[data-mapping="title"] pre.caret')).to_be_visible()
    expect(refused.locator('li[data-mapping="nickName"]')).to_contain_text("syntax error")
    expect(page.locator("#mappings-error")).to_contain_text("2 mappings refused")
    shot(page, "ux-02-policy-errors")
    assert api.get(f"/apps/{app['id']}/policy").json()["version"] == 0


def test_edit_a_profile_and_find_the_user_by_name_in_the_activity_log(
    page: Page, server: str, api: httpx.Client, make_admin: MakeAdmin
) -> None:
    s = str(time.monotonic_ns())[-6:]
    user = api.post("/users", json=person(f"zoe.p{s}")).json()
    _sign_in(page, server, make_admin)
    page.goto(f"{server}/directory/users/{user['id']}")
    page.get_by_role("link", name="Edit profile").click()
    page.get_by_label("Email").fill("nope")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#email-error")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Email").fill(f"zoe.p{s}@example.org")
    page.get_by_label("Title").fill("Curator")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status").first).to_contain_text("Saved the profile")
    expect(page.locator("dl.profile")).to_contain_text("Curator")
    shot(page, "ux-03-profile-saved")

    # The activity log by the user's first and last name, then the event in detail.
    page.goto(f"{server}/activity")
    page.get_by_label("User (login, name or id)").fill(f"Zoe P{s}")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#matched-users")).to_contain_text(f"zoe.p{s}")
    row = page.locator("tr", has_text="user.account.update_profile")
    expect(row).to_have_count(1)
    row.get_by_role("link").click()
    expect(page.locator("#event-details")).to_contain_text("Curator")


def test_the_dashboard_fits_its_cards_at_three_apps(
    page: Page, server: str, api: httpx.Client, target: str, make_admin: MakeAdmin
) -> None:
    s = str(time.monotonic_ns())[-6:]
    user = api.post("/users", json=person(f"dan.d{s}")).json()
    for n in range(3):
        app = _enabled_app(api, f"salesforce-emea-{n}-{s}", target)
        assign(api, app["id"], "user", user["id"])
        _active(api, app["id"], 1)
        for _ in range(2):
            run = api.post(f"/apps/{app['id']}/sync").json()
            eventually(lambda r=run: api.get(f"/runs/{r['id']}").json()["status"] != "running",
                       timeout=30)
    _sign_in(page, server, make_admin)
    for width in (1280, 1024, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{server}/")
        expect(page.locator(".cards .card")).to_have_count(3)  # one per app (and the posture's)
        expect(page.locator(".cards .card table")).to_have_count(3)
        overflowing = page.evaluate(
            """() => [...document.querySelectorAll('.card')].flatMap(card =>
                 [...card.querySelectorAll('*')]
                   .filter(el => el.scrollWidth > card.clientWidth
                              || el.getBoundingClientRect().right > card.getBoundingClientRect().right + 0.5)
                   .map(el => `${el.tagName}.${el.className}: ${el.scrollWidth} > ${card.clientWidth}`))"""
        )
        shot(page, f"ux-04-dashboard-{width}")
        assert overflowing == [], (width, overflowing)
