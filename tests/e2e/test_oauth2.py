"""OAuth 2.0 client credentials end to end: a real token endpoint (RFC 6749 §4.4) and a SCIM
app that accepts only the tokens it issued, an app configured over the API, on both databases."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, select

from provisiond.runtime import Runtime
from tests.e2e.conftest import eventually, person
from tests.support.oauth import TokenIssuer, oauth_target

CLIENT_ID = "provisiond"
# A ':' and a '%' in the secret: HTTP Basic must form-urlencode them first (RFC 6749 §2.3.1).
SECRET = "oauth-SECRET-v4lue:with%odd+chars"


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(CLIENT_ID, SECRET)


@pytest.fixture
def root(issuer: TokenIssuer) -> Iterator[str]:
    with oauth_target(issuer) as url:
        yield url


def oauth_app(name: str, root: str, secret: str = SECRET, **auth: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label": name.title(),
        "connector": {
            "base_url": f"{root}/v2",
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": f"{root}/oauth/token",
                "client_id": CLIENT_ID,
                "client_secret": secret,
                "scope": "scim",
                **auth,
            },
        },
    }


def remote_user(issuer: TokenIssuer, root: str, user_name: str) -> dict[str, Any] | None:
    """The user as the app holds it, read with a token the test issues to itself."""
    token = issuer.issue("test", None, expires_in=60).token
    response = httpx.get(
        f"{root}/v2/Users",
        params={"filter": f'userName eq "{user_name}"'},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    resources = response.json().get("Resources", [])
    return resources[0] if resources else None


def provision(api: httpx.Client, app_id: str, login: str) -> None:
    user = api.post("/users", json=person(login)).json()
    assigned = api.post(
        f"/apps/{app_id}/assignments", json={"principal_type": "user", "principal_id": user["id"]}
    )
    assert assigned.status_code == 201, assigned.text


def enable(api: httpx.Client, app_id: str) -> httpx.Response:
    settings = api.get(f"/apps/{app_id}/provisioning").json()
    return api.put(f"/apps/{app_id}/provisioning", json={**settings, "enabled": True})


def stored_text(runtime: Runtime) -> str:
    """Every row of every table, as text: what a database dump would hold."""
    metadata = MetaData()
    with runtime.db.engine.connect() as connection:
        metadata.reflect(connection)
        return "\n".join(
            repr(row)
            for table in metadata.sorted_tables
            for row in connection.execute(select(table))
        )


def test_an_oauth2_app_provisions_with_issued_tokens_renewing_them(
    api: httpx.Client,
    issuer: TokenIssuer,
    root: str,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []  # every answer the API gave: none may hold the secret

    created = api.post("/apps", json=oauth_app("wiki", root))
    seen.append(created.text)
    assert created.status_code == 201, created.text
    app = created.json()
    assert app["connector"]["auth"] == {
        "type": "oauth2_client_credentials",
        "token_url": f"{root}/oauth/token",
        "client_id": CLIENT_ID,
        "scope": "scim",
        "token_endpoint_auth_method": "client_secret_basic",
        "secret_set": True,
    }

    enabled = enable(api, app["id"])
    seen.append(enabled.text)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["last_test"]["ok"], enabled.text
    assert issuer.client_grants()[-1].method == "client_secret_basic"
    assert issuer.client_grants()[-1].scope == "scim"

    # Provisioning fetches a token and the app accepts it.
    provision(api, app["id"], "ada.lovelace")
    eventually(lambda: remote_user(issuer, root, "ada.lovelace"), timeout=30)
    worker_token = issuer.client_grants()[-1].token
    assert worker_token not in issuer.refused_tokens

    # The token expires: the next change fetches a new one and succeeds.
    issuer.expires_in = 60.0
    grants = len(issuer.client_grants())
    issuer.revoke_all()  # as an expiry would, but without waiting for one
    provision(api, app["id"], "bob.byron")
    eventually(lambda: remote_user(issuer, root, "bob.byron"), timeout=30)
    # One 401 with the cached token, one new token, one retry: not a token per request.
    assert issuer.refused_tokens.count(worker_token) == 1
    assert len(issuer.client_grants()) == grants + 1

    for path in ("/apps", f"/apps/{app['id']}", "/logs?limit=200", f"/apps/{app['id']}/accounts"):
        seen.append(api.get(path).text)
    seen.append(api.post(f"/apps/{app['id']}/provisioning/test").text)
    for text in (*seen, caplog.text, stored_text(runtime)):
        assert SECRET not in text
        assert SECRET.split(":")[0] not in text


def test_an_expired_token_is_renewed_before_it_is_sent(
    api: httpx.Client, issuer: TokenIssuer, root: str
) -> None:
    issuer.expires_in = 4.0
    app = api.post("/apps", json=oauth_app("crm", root)).json()
    assert enable(api, app["id"]).status_code == 200
    provision(api, app["id"], "ada.lovelace")
    eventually(lambda: remote_user(issuer, root, "ada.lovelace"), timeout=30)
    first = issuer.client_grants()[-1].token

    eventually(lambda: not issuer.accepts(first), timeout=30)
    provision(api, app["id"], "bob.byron")
    eventually(lambda: remote_user(issuer, root, "bob.byron"), timeout=30)

    assert issuer.client_grants()[-1].token != first
    assert issuer.refused_clients == 0


def test_client_secret_post_sends_the_credentials_in_the_form(
    api: httpx.Client, issuer: TokenIssuer, root: str
) -> None:
    spec = oauth_app("crm", root, token_endpoint_auth_method="client_secret_post")
    app = api.post("/apps", json=spec).json()

    report = api.post(f"/apps/{app['id']}/provisioning/test").json()

    assert report["ok"], report
    assert [grant.method for grant in issuer.client_grants()] == ["client_secret_post"]


def test_a_wrong_client_secret_fails_the_connection_test_clearly(
    api: httpx.Client, issuer: TokenIssuer, root: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-SECRET-typed-by-mistake"
    app = api.post("/apps", json=oauth_app("crm", root, secret=wrong)).json()

    report = api.post(f"/apps/{app['id']}/provisioning/test")
    refused = enable(api, app["id"])

    assert not report.json()["ok"]
    reason = report.json()["reason"]
    assert f"token endpoint {root}/oauth/token refused the client credentials" in reason
    assert "401 invalid_client" in reason
    assert refused.status_code == 409, refused.text
    assert api.get(f"/apps/{app['id']}/provisioning").json()["enabled"] is False
    assert issuer.refused_clients >= 2 and not issuer.client_grants()
    logs = api.get("/logs", params={"limit": 100}).text
    for text in (report.text, refused.text, logs, caplog.text):
        assert wrong not in text
