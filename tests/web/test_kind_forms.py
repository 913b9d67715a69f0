"""The console adds and edits LDAP and PostgreSQL apps (issue 16): the kind picked by a link,
each kind's fields validated as the API validates them, errors beside their fields, a stored
secret kept on edit while the server stays the same, and the connection test run for them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from provisiond.runtime import Runtime
from provisiond.store.tables import App
from tests.support.pg_roles import Scratch, scratch_for_provisiond
from tests.web.conftest import post_form

LDAP_FORM = {
    "name": "legacy",
    "label": "Legacy directory",
    "kind": "ldap",
    # Nothing listens on port 1: the connection test fails at once, with its diagnosis.
    "url": "ldap://127.0.0.1:1",
    "tls_verify": "on",
    "bind_dn": "cn=provisiond,dc=example,dc=org",
    "bind_password": "ldap-s3cret",
    "users_dn": "ou=people,dc=example,dc=org",
    "user_rdn": "uid={userName}",
    "deactivation": "attribute",
    "disabled_attribute": "employeeType",
    "disabled_value": "disabled",
}


def _error(html: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error">([^<]+)</p>', html)
    assert match, html
    return match.group(1)


def _app(runtime: Runtime) -> App:
    with runtime.db.session() as session:
        return session.scalars(select(App)).one()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_ldap_app_is_added_tested_and_edited_keeping_its_password(
    console: httpx.Client, runtime: Runtime
) -> None:
    picker = console.get("/apps/new")
    assert 'href="/apps/new?kind=ldap"' in picker.text
    page = "/apps/new?kind=ldap"
    assert 'name="bind_dn"' in console.get(page).text

    # A DN template naming no attribute: refused beside its field, nothing saved, nothing lost.
    bad = post_form(console, page, "/apps/new", {**LDAP_FORM, "user_rdn": "uid=userName"})
    assert bad.status_code == 422, bad.text
    assert "user_rdn must name a SCIM attribute" in _error(bad.text, "user_rdn")
    assert 'value="ou=people,dc=example,dc=org"' in bad.text
    assert "ldap-s3cret" not in bad.text
    move = post_form(console, page, "/apps/new", {**LDAP_FORM, "deactivation": "move"})
    assert "needs inactive_dn" in _error(move.text, "inactive_dn")
    with runtime.db.session() as session:
        assert session.scalars(select(App)).all() == []

    created = post_form(console, page, "/apps/new", LDAP_FORM)
    assert created.status_code == 303, created.text
    provisioning = created.headers["location"]
    app = _app(runtime)
    assert app.connector["kind"] == "ldap" and "bind_password" not in app.connector
    assert runtime.vault.open(app.credentials) == {"bind_password": "ldap-s3cret"}
    shown = console.get(provisioning).text
    assert "Set — leave empty to keep it." in shown and "ldap-s3cret" not in shown

    tested = post_form(console, provisioning, provisioning.replace("provisioning", "test"), {})
    assert tested.status_code == 303
    assert "Failed" in console.get(provisioning).text
    assert _app(runtime).last_test is not None

    action = provisioning.replace("provisioning", "connector")
    edit = {**LDAP_FORM, "bind_password": "", "groups_dn": "ou=groups,dc=example,dc=org"}
    saved = post_form(console, provisioning, action, edit)
    assert saved.status_code == 303, saved.text
    app = _app(runtime)
    assert app.connector["groups_dn"] == "ou=groups,dc=example,dc=org"
    assert runtime.vault.open(app.credentials) == {"bind_password": "ldap-s3cret"}

    unplaced = post_form(console, provisioning, action, {**edit, "deactivation": "move"})
    assert "needs inactive_dn" in _error(unplaced.text, "inactive_dn")

    # The kept password does not follow the app to another server.
    moved = post_form(console, provisioning, action, {**edit, "url": "ldap://elsewhere.example"})
    assert moved.status_code == 422, moved.text
    assert "bind_password" in _error(moved.text, "bind_password")
    assert _app(runtime).connector["url"] == "ldap://127.0.0.1:1"


@pytest.fixture
def db(pg_server: str) -> Iterator[Scratch]:
    with scratch_for_provisiond(pg_server) as made:
        yield made


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_postgresql_app_is_added_and_passes_its_connection_test(
    console: httpx.Client, runtime: Runtime, db: Scratch
) -> None:
    page = "/apps/new?kind=postgresql"
    form = {
        "name": "warehouse",
        "label": "Warehouse",
        "kind": "postgresql",
        "host": "127.0.0.1",
        "port": "5432",
        "database": db.database,
        "username": f"{db.prefix}provisiond",
        "password": "",  # trust auth: none
        "sslmode": "prefer",
        "reassign_owned_to": "",
    }
    bad = post_form(console, page, "/apps/new", {**form, "reassign_owned_to": "pg_monitor"})
    assert "names starting with pg_" in _error(bad.text, "reassign_owned_to")
    created = post_form(console, page, "/apps/new", form)
    assert created.status_code == 303, created.text
    provisioning = created.headers["location"]
    app = _app(runtime)
    assert app.connector["database"] == db.database and app.credentials is None
    assert "Not set." in console.get(provisioning).text

    tested = post_form(console, provisioning, provisioning.replace("provisioning", "test"), {})
    assert tested.status_code == 303
    assert _app(runtime).last_test["ok"], _app(runtime).last_test  # type: ignore[index]
