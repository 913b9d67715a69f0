"""The Admins & tokens page: super_admin only; each form changes one thing and logs it."""

from __future__ import annotations

import re

import httpx

from provisiond.runtime import Runtime
from provisiond.services import tokens
from provisiond.services.context import SYSTEM
from tests.web.conftest import PASSWORD, MakeAdmin, post_form, sign_in


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
