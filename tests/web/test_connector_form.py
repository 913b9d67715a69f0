"""The Provisioning tab's connector form: the per-read timeout and the total request deadline."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from provisiond.runtime import Runtime
from provisiond.store.tables import App
from tests.web.conftest import post_form

BASE_URL = "https://crm.example.org/scim/v2"


def _value(html: str, field: str) -> str:
    match = re.search(rf'<input id="{field}" name="{field}" type="number" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


def _new_app(console: httpx.Client) -> str:
    created = post_form(
        console,
        "/apps/new",
        "/apps/new",
        {"name": "crm", "label": "CRM", "base_url": BASE_URL, "auth_type": "none"},
    )
    assert created.status_code == 303, created.text
    return str(created.headers["location"])


def test_the_request_deadline_is_shown_and_saved(console: httpx.Client, runtime: Runtime) -> None:
    page = _new_app(console)
    shown = console.get(page).text
    assert _value(shown, "request_deadline_seconds") == "30.0"
    assert _value(shown, "timeout_seconds") == "10.0"

    connector = page.replace("/provisioning", "/connector")
    form = {"base_url": BASE_URL, "auth_type": "none", "timeout_seconds": "5"}
    saved = post_form(console, page, connector, {**form, "request_deadline_seconds": "45"})
    assert saved.status_code == 303, saved.text
    assert _value(console.get(page).text, "request_deadline_seconds") == "45.0"
    with runtime.db.session() as session:
        stored = session.scalars(select(App)).one().connector
    assert (stored["timeout_seconds"], stored["request_deadline_seconds"]) == (5.0, 45.0)


def test_a_deadline_out_of_bounds_is_refused_beside_its_field(
    console: httpx.Client, runtime: Runtime
) -> None:
    page = _new_app(console)
    connector = page.replace("/provisioning", "/connector")
    form = {"base_url": BASE_URL, "auth_type": "none"}
    for typed, says in (
        ("0", "greater than or equal to 1"),
        ("301", "less than or equal to 300"),
        ("soon", "enter a number"),
    ):
        refused = post_form(console, page, connector, {**form, "request_deadline_seconds": typed})
        assert refused.status_code == 422, refused.text
        error = re.search(
            r'<p class="error" id="request_deadline_seconds-error">([^<]+)</p>', refused.text
        )
        assert error and says in error.group(1), refused.text
        assert _value(refused.text, "request_deadline_seconds") == typed  # what was typed stays
    with runtime.db.session() as session:
        assert session.scalars(select(App)).one().connector["request_deadline_seconds"] == 30.0


def _selected(html: str) -> str:
    select = html[html.index('<select id="profile"') :]
    select = select[: select.index("</select>")]
    match = re.search(r'<option value="([^"]*)" selected>', select)
    assert match, select
    return match.group(1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no store behaviour here
def test_the_dialect_profile_is_picked_and_an_edited_one_kept(
    console: httpx.Client, runtime: Runtime
) -> None:
    page = _new_app(console)
    assert _selected(console.get(page).text) == "rfc"
    connector = page.replace("/provisioning", "/connector")
    form = {"base_url": BASE_URL, "auth_type": "none"}
    saved = post_form(console, page, connector, {**form, "profile": "okta-compatible"})
    assert saved.status_code == 303, saved.text
    assert _selected(console.get(page).text) == "okta-compatible"

    # Edited elsewhere (API, CLI): the form offers to keep it, and keeps it when left so.
    with runtime.db.session() as session:
        app = session.scalars(select(App)).one()
        app.connector = {**app.connector, "profile": {**app.connector["profile"], "page_size": 7}}
    shown = console.get(page).text
    assert _selected(shown) == "" and "okta-compatible, edited" in shown
    assert post_form(console, page, connector, {**form, "profile": ""}).status_code == 303
    with runtime.db.session() as session:
        profile = session.scalars(select(App)).one().connector["profile"]
    assert (profile["name"], profile["page_size"], profile["patch"]) == (
        "okta-compatible", 7, "no-path"
    )

    refused = post_form(console, page, connector, {**form, "profile": "workday"})
    assert refused.status_code == 422 and 'id="profile-error"' in refused.text
