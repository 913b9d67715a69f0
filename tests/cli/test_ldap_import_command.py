"""``provisiond import-ldap``: a preview, then --apply, against the real server and slapd."""

from __future__ import annotations

import uuid

import pytest

from tests.cli.conftest import Run, flat, ok
from tests.support.slapd import ADMIN_DN, ADMIN_PASSWORD, Slapd, add_ous, admin_connection


def _one_person(ldap_server: Slapd, token: str, first: str) -> dict[str, str]:
    """A fresh OU with one person in it (``{first}.{token}``)."""
    ous = add_ous(ldap_server, f"{first[0]}{token}", "people")
    conn = admin_connection(ldap_server)
    try:
        entry = {"uid": f"{first}.{token}", "cn": first, "givenName": first, "sn": "Lee",
                 "mail": f"{first}.{token}@example.com"}
        assert conn.add(f"uid={first}.{token},{ous['people']}", ["inetOrgPerson"], entry)
    finally:
        conn.unbind()
    return ous


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_import_ldap_previews_then_applies(cli: Run, ldap_server: Slapd) -> None:
    token = uuid.uuid4().hex[:8]
    ous = _one_person(ldap_server, token, "ann")
    args = ("import-ldap", "--name", f"corp-{token}", "--url", ldap_server.url, "--bind-dn", ADMIN_DN,
            "--base-dn", ous["people"], "--bind-password-env", "LDAP_PW")
    env = {"LDAP_PW": ADMIN_PASSWORD}
    preview = flat(ok(cli(*args, env=env)).output)
    assert preview == "1 create preview only: --apply makes these changes"
    assert flat(ok(cli(*args, "--apply", env=env)).output) == "1 create applied"
    assert flat(ok(cli(*args, env=env)).output).startswith("nothing to change")
    users = flat(ok(cli("users", "list")).output)
    assert f"ann.{token}" in users


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ldap_source_create_list_run_delete(cli: Run, ldap_server: Slapd) -> None:
    token = uuid.uuid4().hex[:8]
    ous = _one_person(ldap_server, token, "kim")
    name = f"hr-{token}"
    made = ok(cli("ldap-source", "create", "--name", name, "--url", ldap_server.url,
                  "--bind-dn", ADMIN_DN, "--base-dn", ous["people"], "--bind-password-env", "LDAP_PW",
                  env={"LDAP_PW": ADMIN_PASSWORD})).output
    assert f"LDAP source {name} stored" in made and ADMIN_PASSWORD not in made
    listed = flat(ok(cli("ldap-source", "list")).output)
    assert name in listed and "on demand" in listed
    assert flat(ok(cli("ldap-source", "run", name, "--apply")).output) == (
        "1 create full run, 1 entries read: applied"
    )
    again = flat(ok(cli("ldap-source", "run", name)).output)
    assert again.startswith("nothing to change incremental run")
    assert f"kim.{token}" in flat(ok(cli("users", "list")).output)
    ok(cli("ldap-source", "delete", name))
    assert name not in flat(ok(cli("ldap-source", "list")).output)
