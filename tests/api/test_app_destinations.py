"""Stored credentials stay with where they were entered for: scheme and host (and port)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from provisiond.runtime import Runtime
from provisiond.store.tables import App
from tests.api.test_bad_input import assert_problem

TOKEN = "stored-BEARER-token-123"
SECRET = "stored-CLIENT-secret-456"


def bearer_app(api: httpx.Client, base_url: str) -> dict[str, Any]:
    spec = {
        "name": "crm",
        "label": "CRM",
        "connector": {"base_url": base_url, "auth": {"type": "bearer", "token": TOKEN}},
    }
    created = api.post("/apps", json=spec)
    assert created.status_code == 201, created.text
    app: dict[str, Any] = created.json()
    return app


def stored(runtime: Runtime) -> tuple[dict[str, Any], str | None]:
    with runtime.db.session() as session:
        app = session.scalars(select(App)).one()
        return app.connector, app.credentials


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("https://crm.example.org/scim/v2", "http://crm.example.org/scim/v2"),
        ("http://crm.example.org/scim/v2", "https://crm.example.org/scim/v2"),
        ("https://crm.example.org/scim/v2", "https://crm.example.org:8443/scim/v2"),
        ("https://crm.example.org/scim/v2", "https://other.example.org/scim/v2"),
    ],
)
def test_a_new_scheme_or_host_does_not_keep_the_stored_token(
    api: httpx.Client, runtime: Runtime, before: str, after: str
) -> None:
    app = bearer_app(api, before)
    unchanged = stored(runtime)

    refused = api.patch(f"/apps/{app['id']}", json={"connector": {"base_url": after}})

    body = assert_problem(refused, 422)
    assert body["field"] == "connector.auth"
    assert TOKEN not in refused.text
    assert stored(runtime) == unchanged
    # Entering the token again for the new address is what it takes.
    again = {"base_url": after, "auth": {"type": "bearer", "token": TOKEN}}
    moved = api.patch(f"/apps/{app['id']}", json={"connector": again})
    assert moved.status_code == 200, moved.text
    assert moved.json()["connector"]["base_url"] == after


def test_a_new_path_on_the_same_origin_keeps_the_token(api: httpx.Client, runtime: Runtime) -> None:
    app = bearer_app(api, "https://crm.example.org/scim/v2")

    moved = api.patch(
        f"/apps/{app['id']}", json={"connector": {"base_url": "https://CRM.example.org/api/scim"}}
    )

    assert moved.status_code == 200, moved.text
    assert moved.json()["connector"]["auth"]["secret_set"] is True
    assert runtime.vault.open(stored(runtime)[1]) == {"token": TOKEN}


@pytest.mark.parametrize(
    "after", ["https://crm.example.org/scim/v2", "http://crm.example.org/scim/v2"]
)
def test_auth_none_drops_the_credentials_wherever_the_app_goes(
    api: httpx.Client, runtime: Runtime, after: str
) -> None:
    app = bearer_app(api, "https://crm.example.org/scim/v2")

    moved = api.patch(
        f"/apps/{app['id']}", json={"connector": {"base_url": after, "auth": {"type": "none"}}}
    )

    assert moved.status_code == 200, moved.text
    assert moved.json()["connector"]["auth"] == {"type": "none", "secret_set": False}
    assert stored(runtime)[1] is None


def test_a_token_endpoint_on_a_new_scheme_needs_the_client_secret_again(
    api: httpx.Client, runtime: Runtime
) -> None:
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": "https://login.example.org/oauth/token",
        "client_id": "provisiond",
        "client_secret": SECRET,
    }
    spec = {
        "name": "crm",
        "label": "CRM",
        "connector": {"base_url": "https://crm.example.org/scim/v2", "auth": auth},
    }
    app = api.post("/apps", json=spec).json()
    unchanged = stored(runtime)
    downgraded = {**auth, "token_url": "http://login.example.org/oauth/token"}
    del downgraded["client_secret"]

    refused = api.patch(f"/apps/{app['id']}", json={"connector": {"auth": downgraded}})
    kept_scope = api.patch(
        f"/apps/{app['id']}",
        json={
            "connector": {"auth": {**downgraded, "token_url": auth["token_url"], "scope": "scim"}}
        },
    )

    body = assert_problem(refused, 422)
    assert body["field"] == "connector.auth"
    assert SECRET not in refused.text
    assert unchanged[1] is not None
    assert kept_scope.status_code == 200, kept_scope.text
    # The same origin: the secret is kept.
    assert runtime.vault.open(stored(runtime)[1]) == {"client_secret": SECRET}
    assert stored(runtime)[0]["auth"]["scope"] == "scim"


# LDAP and PostgreSQL apps (issue 16) have no URL scheme to downgrade, but the same switch:
# StartTLS off, certificates unverified, a weaker sslmode send the password where a listener
# on the path reads it.
LDAP = {
    "kind": "ldap",
    "url": "ldap://ldap.example.org",
    "start_tls": True,
    "bind_dn": "cn=provisiond,dc=example,dc=org",
    "bind_password": TOKEN,
    "users_dn": "ou=people,dc=example,dc=org",
}
POSTGRES = {
    "kind": "postgresql",
    "host": "db.example.org",
    "username": "provisiond",
    "password": TOKEN,
    "sslmode": "verify-full",
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the store plays no part
@pytest.mark.parametrize(
    ("connector", "secret", "change"),
    [
        (LDAP, "bind_password", {"start_tls": False}),
        (LDAP, "bind_password", {"tls_verify": False}),
        (LDAP, "bind_password", {"ca_file": "/tmp/their-ca.pem"}),
        (LDAP, "bind_password", {"url": "ldaps://ldap.example.org", "start_tls": False}),
        (POSTGRES, "password", {"sslmode": "disable"}),
        (POSTGRES, "password", {"sslmode": "prefer"}),
    ],
)
def test_weaker_transport_security_does_not_keep_the_stored_password(
    api: httpx.Client,
    runtime: Runtime,
    connector: dict[str, Any],
    secret: str,
    change: dict[str, Any],
) -> None:
    created = api.post("/apps", json={"name": "db", "label": "DB", "connector": connector})
    assert created.status_code == 201, created.text
    app_id = created.json()["id"]
    unchanged = stored(runtime)

    refused = api.patch(f"/apps/{app_id}", json={"connector": change})

    body = assert_problem(refused, 422)
    assert body["field"] == "connector"
    assert TOKEN not in refused.text
    assert stored(runtime) == unchanged
    again = api.patch(f"/apps/{app_id}", json={"connector": {**change, secret: TOKEN}})
    assert again.status_code == 200, again.text
    # A change that leaves the transport as it was keeps the password.
    kept = api.patch(f"/apps/{app_id}", json={"connector": {"timeout_seconds": 20}
                                              if connector is LDAP else {"port": 5432}})
    assert kept.status_code == 200, kept.text
    assert runtime.vault.open(stored(runtime)[1]) == {secret: TOKEN}
