"""``scim-token create|list|revoke`` over the API: the token works on /scim/v2 only."""

from __future__ import annotations

import httpx
import pytest

from tests.cli.conftest import Run, ok


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_create_list_and_revoke_a_scim_token(cli: Run, server: str) -> None:
    created = ok(cli("scim-token", "create", "--name", "okta"))
    token = created.stdout.strip()
    assert token.startswith("pvdscim_") and "\n" not in token
    assert httpx.get(f"{server}/scim/v2/Users",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listed = ok(cli("scim-token", "list")).stdout
    assert "okta" in listed and token[:12] in listed and token not in listed
    revoked = ok(cli("scim-token", "revoke", "okta")).stdout
    assert revoked.startswith("revoked SCIM client okta")
    assert httpx.get(f"{server}/scim/v2/Users",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 401
    missing = cli("scim-token", "revoke", "okta")
    assert missing.exit_code == 1 and "no active SCIM client" in missing.stderr
