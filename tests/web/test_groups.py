"""Console: a group's rule and nested groups, with errors beside their fields."""

from __future__ import annotations

import html

import httpx

from tests.e2e.conftest import person
from tests.web.conftest import post_form
from tests.web.test_forms import _field_error


def test_rules_and_nesting_in_the_console(console: httpx.Client, api: httpx.Client) -> None:
    api.post("/users", json=person("ada.sales", department="Sales")).raise_for_status()
    bad = post_form(
        console,
        "/directory/groups",
        "/directory/groups",
        {"name": "Sales", "rule": "user.department =="},
    )
    assert bad.status_code == 422 and "rule" in _field_error(bad.text, "rule")
    assert api.get("/groups").json()["items"] == []

    created = post_form(
        console,
        "/directory/groups",
        "/directory/groups",
        {"name": "Sales", "rule": 'user.department == "Sales"'},
    )
    assert created.status_code == 303, created.text
    sales = created.headers["location"]
    page = console.get(sales).text
    assert 'user.department == "Sales"' in html.unescape(page) and "ada.sales" in page
    assert 'action="' + sales + '/members"' not in page  # no manual members on a rule group

    staff = post_form(console, "/directory/groups", "/directory/groups", {"name": "Staff"})
    staff_page = staff.headers["location"]
    nested = post_form(console, staff_page, staff_page + "/children", {"child": "Sales"})
    assert nested.status_code == 303
    page = console.get(staff_page).text
    assert "0 direct, 1 with nested groups" in page and ">Sales</a>" in page
    # Ada's page names Staff as reached through nesting, beside her direct group Sales.
    ada = api.get("/users", params={"q": "ada.sales"}).json()["items"][0]
    user_page = console.get(f"/directory/users/{ada['id']}").text
    direct, _, through = user_page.partition("Groups reached through nesting")
    direct = direct.split('id="groups-title"')[1]
    assert ">Sales</a>" in direct and ">Staff</a>" not in direct and ">Staff</a>" in through

    cycle = post_form(console, sales, sales + "/children", {"child": "Staff"})
    assert cycle.status_code == 422 and "→" in _field_error(html.unescape(cycle.text), "child")
    unknown = post_form(console, sales, sales + "/children", {"child": "Nope"})
    assert "no group named" in _field_error(unknown.text, "child")
    bad_rule = post_form(console, sales, sales + "/rule", {"rule": "user.nope == 1"})
    assert "unknown attribute" in _field_error(bad_rule.text, "rule")

    removed = post_form(console, sales, sales + "/rule", {"rule": ""})
    assert removed.status_code == 303
    page = console.get(sales).text
    assert "No rule" in page and 'action="' + sales + '/members"' in page
    child_id = sales.rsplit("/", 1)[1]
    unnested = post_form(console, staff_page, f"{staff_page}/children/{child_id}/remove", {})
    assert unnested.status_code == 303
    assert "No nested groups." in console.get(staff_page).text
