"""``apps create-postgresql`` and ``apps create-ldap`` against the real server and peers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.cli.conftest import Run, flat, ok
from tests.support.pg_roles import scratch
from tests.support.slapd import ADMIN_DN, ADMIN_PASSWORD, Slapd, add_ous


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_create_test_and_show_apps_of_each_kind(
    cli: Run, cli_json: Callable[..., Any], pg_server: str, ldap_server: Slapd
) -> None:
    token = uuid.uuid4().hex[:8]
    with scratch(pg_server) as db:
        created = cli_json(
            "apps", "create-postgresql", f"wh-{token}", "--host", "127.0.0.1",
            "--database", db.database, "--username", "postgres", "--password-stdin",
            input="unused-under-trust\n",
        )
        assert created["connector"]["kind"] == "postgresql" and created["connector"]["secret_set"]
        tested = cli_json("provisioning", "test", f"wh-{token}")
        assert tested["ok"], tested

    ous = add_ous(ldap_server, f"c{token}", "people")
    missing = cli("apps", "create-ldap", f"dir-{token}", "--url", ldap_server.url,
                  "--bind-dn", ADMIN_DN, "--users-dn", ous["people"])
    assert missing.exit_code == 2 and "needs the bind password" in flat(missing.output)
    ok(cli("apps", "create-ldap", f"dir-{token}", "--url", ldap_server.url, "--bind-dn", ADMIN_DN,
           "--users-dn", ous["people"], "--start-tls", "--ca-file", ldap_server.ca_file,
           "--bind-password-stdin", input=f"{ADMIN_PASSWORD}\n"))
    assert cli_json("provisioning", "test", f"dir-{token}")["ok"]
    shown = flat(ok(cli("apps", "get", f"dir-{token}")).output)
    assert f"where {ldap_server.url}" in shown and "secret set yes" in shown, shown
    assert ADMIN_PASSWORD not in shown
    listed = flat(ok(cli("apps", "list")).output)
    assert f"postgresql://127.0.0.1:5432/{db.database}" in listed and ldap_server.url in listed
