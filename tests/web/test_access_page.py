"""The Admins & tokens page: super_admin only; each form changes one thing and logs it."""

from __future__ import annotations

import re

import httpx

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.runtime import Runtime
from provisiond.services import apps, tokens
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Admin
from tests.web.conftest import PASSWORD, MakeAdmin, csrf_of, post_form, sign_in

NEW_PASSWORD = "a brand new long password"


def test_a_super_admin_manages_admins_and_tokens(
    server: str, console: httpx.Client, make_admin: MakeAdmin, runtime: Runtime
) -> None:
    make_admin("ops", role="read_only")
    with runtime.db.session() as session:
        old = tokens.create_token(session, SYSTEM, "old-ci")
    page = console.get("/access")
    assert page.status_code == 200
    assert "ops" in page.text and "old-ci" in page.text and old[:10] in page.text
    assert old not in page.text

    # A token made here is shown once, in this answer only.
    made = post_form(console, "/access", "/access/tokens", {"name": "grafana", "role": "read_only", "expires_days": "30"})
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    secret = re.search(r'<code id="new-token">([^<]+)</code>', made.text)
    assert secret and secret.group(1).startswith("pvd_")
    assert secret.group(1) not in console.get("/access").text
    with httpx.Client(base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {secret.group(1)}"}) as api:
        assert api.get("/users").status_code == 200

    bad = post_form(console, "/access", "/access/tokens", {"name": "x", "role": "read_only", "expires_days": "soon"})
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text

    # Revoke the old token.
    token_id = re.search(r'action="/access/tokens/([^/]+)/revoke">', page.text)
    assert token_id
    revoked = post_form(console, "/access", f"/access/tokens/{token_id.group(1)}/revoke", {})
    assert revoked.status_code == 303
    with httpx.Client(base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {old}"}) as api:
        assert api.get("/users").status_code == 401

    # Disable ops while it is signed in: its next page is the sign-in.
    ops_id = re.search(r'action="/access/admins/([^/"]+)/disable">(?:(?!</tr>).)*?Disable <span class="sr-only">ops<', page.text, re.S)
    assert ops_id
    with sign_in(server, "ops") as ops:
        assert ops.get("/tasks").status_code == 200
        done = post_form(console, "/access", f"/access/admins/{ops_id.group(1)}/disable", {})
        assert done.status_code == 303
        assert ops.get("/tasks").status_code == 303

    # The last super_admin cannot disable itself: refused, said, nothing changed.
    root_id = re.search(r'action="/access/admins/([^/"]+)/disable">(?:(?!</tr>).)*?Disable <span class="sr-only">root<', console.get("/access").text, re.S)
    assert root_id
    refused = post_form(console, "/access", f"/access/admins/{root_id.group(1)}/disable", {})
    assert refused.status_code == 303
    assert "last active super_admin" in console.get("/access").text
    assert console.get("/tasks").status_code == 200  # still signed in

    log = console.get("/activity").text
    for action in ("system.api_token.create", "system.api_token.revoke", "user.account.disable"):
        assert action in log, action
    assert PASSWORD not in log and secret.group(1) not in log


def test_other_roles_do_not_see_the_page(server: str, make_admin: MakeAdmin) -> None:
    make_admin("helper", role="app_admin")
    with sign_in(server, "helper") as client:
        assert "Admins &amp; tokens" not in client.get("/").text
        assert client.get("/access").status_code == 403


def _admin_id(page: str, username: str) -> str:
    found = re.search(rf'action="/access/admins/([^/"]+)/delete">(?:(?!</form>).)*?Delete <span class="sr-only">{username}<', page, re.S)
    assert found, page
    return found.group(1)


def test_a_super_admin_changes_role_and_apps_resets_unlocks_and_deletes_in_the_console(
    server: str, console: httpx.Client, make_admin: MakeAdmin, runtime: Runtime, target: str
) -> None:
    """What the API's admin tests do, through the console's forms: every change takes effect,
    a reset ends the admin's sessions at once, and each is an event without the password."""
    make_admin("eve", role="read_only")
    with runtime.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, runtime.vault, name="wiki", label="Wiki",
            connector=ScimConnectorSettings.model_validate({"base_url": target}),
            provisioning=ProvisioningSettings(),
        )
        app_id = app.id
    eve = _admin_id(console.get("/access").text, "eve")

    # Role and apps: eve manages wiki from her next request on.
    changed = post_form(console, "/access", f"/access/admins/{eve}/role",
                        {"role": "app_admin", "apps": [app_id]})
    assert changed.status_code == 303
    with runtime.db.session() as session:
        row = session.get(Admin, eve)
        assert row is not None and (row.role, row.apps) == ("app_admin", [app_id])

    # Failed sign-ins make her throttled; the console clears them.
    for n in range(5):
        with httpx.Client(base_url=server) as anonymous:
            page = anonymous.get("/login")
            anonymous.post("/login", data={"username": "eve", "password": f"wrong {n}",
                                           "csrf_token": csrf_of(page.text)})
    page = console.get("/access").text
    assert f'action="/access/admins/{eve}/unlock"' in page
    assert post_form(console, "/access", f"/access/admins/{eve}/unlock", {}).status_code == 303
    assert f'action="/access/admins/{eve}/unlock"' not in console.get("/access").text

    # A reset ends her session at once; the new password signs in, the old one no more.
    with sign_in(server, "eve") as eves:
        assert eves.get("/tasks").status_code == 200
        short = post_form(console, "/access", f"/access/admins/{eve}/password", {"password": "short"})
        assert short.status_code == 303 and "Not changed" in console.get("/access").text
        assert eves.get("/tasks").status_code == 200  # a refused reset changes nothing
        reset = post_form(console, "/access", f"/access/admins/{eve}/password", {"password": NEW_PASSWORD})
        assert reset.status_code == 303
        assert eves.get("/tasks").status_code == 303
    with sign_in(server, "eve", NEW_PASSWORD) as eves:
        assert eves.get("/tasks").status_code == 200
        # Deleted: her open session ends with the account.
        assert post_form(console, "/access", f"/access/admins/{eve}/delete", {}).status_code == 303
        assert eves.get("/tasks").status_code == 303
    assert "eve" not in console.get("/access").text.split('id="tokens"')[0]

    log = console.get("/activity", params={"action": "user.account"}).text
    for action in ("user.account.privilege.update", "user.account.unlock",
                   "user.account.reset_password", "user.account.delete"):
        assert action in log, action
    assert NEW_PASSWORD not in log and PASSWORD not in log
