"""The app form's OAuth 2.0 client credentials, and secret hints that name the app's own kind."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from provisiond.runtime import Runtime
from provisiond.store.tables import App
from tests.support.oauth import TokenIssuer, oauth_target
from tests.web.conftest import post_form

SECRET = "console-CLIENT-secret-789"


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer("provisiond", SECRET)


@pytest.fixture
def root(issuer: TokenIssuer) -> Iterator[str]:
    with oauth_target(issuer) as url:
        yield url


def hint(html: str, field: str) -> str:
    match = re.search(rf'<p class="hint" id="{field}-hint">([^<]*)</p>', html)
    assert match, html
    return match.group(1)


def value(html: str, field: str) -> str:
    match = re.search(rf'<input id="{field}" name="{field}" type="[a-z]+" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


def oauth_form(root: str, **fields: str) -> dict[str, str]:
    return {
        "name": "wiki",
        "label": "Wiki",
        "base_url": f"{root}/v2",
        "auth_type": "oauth2_client_credentials",
        "token_url": f"{root}/oauth/token",
        "client_id": "provisiond",
        "client_secret": SECRET,
        "scope": "scim",
        "token_endpoint_auth_method": "client_secret_post",
        **fields,
    }


def test_an_oauth2_app_is_added_tested_and_enabled_through_the_form(
    console: httpx.Client, issuer: TokenIssuer, root: str, runtime: Runtime
) -> None:
    assert "OAuth 2.0 client credentials" in console.get("/apps/new").text
    created = post_form(console, "/apps/new", "/apps/new", oauth_form(root))
    assert created.status_code == 303, created.text
    page = str(created.headers["location"])

    shown = console.get(page).text
    assert value(shown, "token_url") == f"{root}/oauth/token"
    assert value(shown, "client_id") == "provisiond"
    assert value(shown, "scope") == "scim"
    assert '<option value="client_secret_post" selected>' in shown
    assert hint(shown, "client_secret") == "Set — leave empty to keep it."
    assert hint(shown, "token") == hint(shown, "password") == "Not set."
    assert SECRET not in shown

    tested = post_form(console, page, page.replace("/provisioning", "/test"), {})
    assert tested.status_code == 303, tested.text
    after_test = console.get(page).text
    assert "<strong>Passed</strong>" in after_test, after_test
    assert [grant.method for grant in issuer.client_grants()] == ["client_secret_post"]

    # Saving the connector with the secret left empty keeps it (same origin).
    connector = page.replace("/provisioning", "/connector")
    kept = oauth_form(root, client_secret="", scope="scim users")
    saved = post_form(console, page, connector, kept)
    assert saved.status_code == 303, saved.text
    enabled = post_form(console, page, page, {"enabled": "on", "feature_create_users": "on"})
    assert enabled.status_code == 303, enabled.text
    with runtime.db.session() as session:
        app = session.scalars(select(App)).one()
        assert app.provisioning["enabled"] is True
        assert app.connector["auth"]["scope"] == "scim users"
        assert runtime.vault.open(app.credentials) == {"client_secret": SECRET}
    assert issuer.client_grants()[-1].scope == "scim users"


def test_a_bearer_app_says_only_its_token_is_set(console: httpx.Client) -> None:
    form = {
        "name": "crm",
        "label": "CRM",
        "base_url": "https://crm.example.org/scim/v2",
        "auth_type": "bearer",
        "token": "a-BEARER-token",
    }
    created = post_form(console, "/apps/new", "/apps/new", form)
    assert created.status_code == 303, created.text

    page = str(created.headers["location"])
    shown = console.get(page).text

    assert hint(shown, "token") == "Set — leave empty to keep it."
    assert hint(shown, "password") == hint(shown, "client_secret") == "Not set."
    # Moving it to http with the token left empty would send the token in clear: refused.
    connector = page.replace("/provisioning", "/connector")
    downgraded = {**form, "base_url": "http://crm.example.org/scim/v2", "token": ""}
    refused = post_form(console, page, connector, downgraded)
    assert refused.status_code == 422, refused.text
    error = re.search(r'<p class="error" id="auth_type-error">([^<]+)</p>', refused.text)
    assert error and "send connector.auth with its secret" in error.group(1), refused.text


def test_an_oauth2_form_without_a_token_url_says_so_and_keeps_no_secret(
    console: httpx.Client, root: str, runtime: Runtime
) -> None:
    refused = post_form(console, "/apps/new", "/apps/new", oauth_form(root, token_url=""))

    assert refused.status_code == 422, refused.text
    error = re.search(r'<p class="error" id="token_url-error">([^<]+)</p>', refused.text)
    assert error, refused.text
    assert value(refused.text, "client_id") == "provisiond"  # what was typed stays
    assert SECRET not in refused.text
    with runtime.db.session() as session:
        assert session.scalars(select(App)).first() is None
