"""Console forms: bad values are refused beside their field and save nothing; a failing
connection test keeps provisioning off and says why; changes are logged as the admin."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from provisiond.runtime import Runtime
from provisiond.store.tables import App, Event, User
from tests.support.servers import free_port
from tests.web.conftest import post_form


def _field_error(html: str, field: str) -> str:
    """The message shown beside ``field``, checking the input points at it (aria-describedby)."""
    assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error', html), html
    match = re.search(rf'<p class="error" id="{field}-error">([^<]+)</p>', html)
    assert match, html
    return match.group(1)


def test_invalid_values_are_shown_beside_the_field_and_nothing_is_saved(
    console: httpx.Client, runtime: Runtime
) -> None:
    bad_app = post_form(
        console,
        "/apps/new",
        "/apps/new",
        {"name": "Not A Name", "label": "CRM", "base_url": "ftp://crm", "auth_type": "none"},
    )
    assert bad_app.status_code == 422
    assert "http:// or https://" in _field_error(bad_app.text, "base_url")
    bad_name = post_form(
        console,
        "/apps/new",
        "/apps/new",
        {
            "name": "Not A Name",
            "label": "CRM",
            "base_url": "https://crm.example.com/scim/v2",
            "auth_type": "bearer",
            "token": "t",
        },
    )
    assert "lower-case" in _field_error(bad_name.text, "name")
    assert 'value="CRM"' in bad_name.text  # what was typed is kept, secrets are not

    bad_user = post_form(
        console,
        "/directory/users/new",
        "/directory/users/new",
        {"login": "ada", "email": "not-an-email", "firstName": "Ada", "lastName": "L"},
    )
    assert bad_user.status_code == 422
    assert "email" in _field_error(bad_user.text, "email")
    no_group = post_form(console, "/directory/groups", "/directory/groups", {"name": ""})
    assert no_group.status_code == 422 and _field_error(no_group.text, "name")
    with runtime.db.session() as session:
        assert session.scalars(select(App)).all() == []
        assert session.scalars(select(User)).all() == []


def test_a_failing_connection_test_keeps_provisioning_off_and_shows_why(
    console: httpx.Client, runtime: Runtime
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/scim/v2"
    created = post_form(
        console,
        "/apps/new",
        "/apps/new",
        {
            "name": "crm",
            "label": "CRM",
            "base_url": unreachable,
            "auth_type": "bearer",
            "token": "secret-token",
        },
    )
    assert created.status_code == 303, created.text
    page = created.headers["location"]
    assert page.endswith("/provisioning")

    tested = post_form(console, page, page.replace("/provisioning", "/test"), {})
    assert tested.status_code == 303
    shown = console.get(page).text
    assert "Connection test failed" in shown and "Failed" in shown

    enable = post_form(
        console,
        page,
        page,
        {
            "enabled": "on",
            "feature_create_users": "on",
            "deprovision_action": "deactivate",
            "concurrency": "4",
        },
    )
    assert enable.status_code == 409
    reason = _field_error(enable.text, "enabled")
    assert "connection test failed" in reason
    assert not re.search(r'id="enabled"[^>]*checked', enable.text)  # the toggle stays off
    assert "secret-token" not in enable.text
    bad_number = post_form(console, page, page, {"concurrency": "lots"})
    assert bad_number.status_code == 422 and _field_error(bad_number.text, "concurrency")
    with runtime.db.session() as session:
        app = session.scalars(select(App)).one()
        assert app.provisioning["enabled"] is False and app.provisioning["concurrency"] == 4
        events = session.scalars(select(Event).where(Event.app_id == app.id)).all()
    # Every change is the signed-in admin's, with the request's correlation id.
    assert {e.actor for e in events} == {"admin:root"}
    assert {e.action for e in events} >= {"app.lifecycle.create", "app.provisioning.test"}
    assert len({e.correlation_id for e in events}) == len(events)
