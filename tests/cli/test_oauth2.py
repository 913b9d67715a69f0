"""``provisiond apps create --auth oauth2`` against a real server, token endpoint and SCIM app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cli.conftest import Run, flat, ok
from tests.support.oauth import TokenIssuer, oauth_target

SECRET = "cli-CLIENT-secret-321"


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer("provisiond", SECRET)


@pytest.fixture
def root(issuer: TokenIssuer) -> Iterator[str]:
    with oauth_target(issuer) as url:
        yield url


def create(cli: Run, name: str, root: str, *extra: str) -> None:
    ok(cli("apps", "create", name, "--base-url", f"{root}/v2", "--auth", "oauth2",
           "--token-url", f"{root}/oauth/token", "--client-id", "provisiond", "--scope", "scim",
           "--client-secret-env", "APP_SECRET", *extra, env={"APP_SECRET": SECRET}))


def test_an_oauth2_app_is_created_tested_and_enabled(
    cli: Run, cli_json: Callable[..., Any], issuer: TokenIssuer, root: str
) -> None:
    create(cli, "wiki", root)

    shown = flat(ok(cli("apps", "get", "wiki")).stdout)
    assert f"token url {root}/oauth/token" in shown
    assert "client id provisiond" in shown and "secret set yes" in shown
    assert "token endpoint auth method client_secret_basic" in shown
    assert SECRET not in shown + cli("--json", "apps", "get", "wiki").stdout
    tested = ok(cli("provisioning", "test", "wiki")).stdout
    assert "✓ authenticated read" in tested
    ok(cli("provisioning", "enable", "wiki"))
    assert cli_json("provisioning", "show", "wiki")["enabled"] is True
    assert {grant.method for grant in issuer.client_grants()} == {"client_secret_basic"}
    assert {grant.scope for grant in issuer.client_grants()} == {"scim"}


def test_client_secret_post_is_chosen_on_the_command_line(
    cli: Run, issuer: TokenIssuer, root: str
) -> None:
    create(cli, "crm", root, "--token-endpoint-auth-method", "client_secret_post")

    ok(cli("provisioning", "test", "crm"))

    assert [grant.method for grant in issuer.client_grants()] == ["client_secret_post"]
