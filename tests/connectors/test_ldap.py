"""The LDAP connector against a real slapd on 127.0.0.1 (tests/support/slapd.py)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from provisiond.connectors.destinations import DestinationPolicy
from provisiond.connectors.ldap import LdapConnector
from provisiond.connectors.ldap_entries import dn_key
from provisiond.domain.connector_kinds import LdapConnectorSettings
from provisiond.errors import RemoteConflict, TerminalError
from tests.support.aio import synchronously
from tests.support.slapd import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    FULL_SCHEMA,
    SUFFIX,
    Slapd,
    add_ous,
    admin_connection,
    read,
    slapd,
)

LOOPBACK = DestinationPolicy(allow_loopback=True)




def tree(server: Slapd) -> dict[str, str]:
    return add_ous(server, f"t{uuid.uuid4().hex[:10]}", "people", "groups", "inactive")


def connector(server: Slapd, ous: dict[str, str], **settings: Any) -> LdapConnector:
    values = {
        "url": server.url,
        "bind_dn": ADMIN_DN,
        "bind_password": ADMIN_PASSWORD,
        "users_dn": ous["people"],
        "groups_dn": ous["groups"],
        "inactive_dn": ous["inactive"],
        **settings,
    }
    return LdapConnector(LdapConnectorSettings(**values), policy=LOOPBACK)


def dns(entries: dict[str, Any]) -> list[tuple[tuple[str, str], ...]]:
    return [dn_key(dn) for dn in entries]


ADA = {
    "userName": "ada",
    "name": {"givenName": "Ada", "familyName": "Byron"},
    "displayName": "Ada Byron",
    "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
    "active": True,
}


@synchronously
async def test_accounts_by_attribute_deactivation(ldap_server: Slapd) -> None:
    ous = tree(ldap_server)
    c = connector(ldap_server, ous)
    try:
        assert (await c.test_connection()).ok
        assert await c.holds_no_users()
        created = await c.create_user({**ADA, "roles": [{"value": "editor"}]})
        dn = f"uid=ada,{ous['people']}"
        entry = read(ldap_server, dn)[dn]
        assert entry["cn"] == ["Ada Byron"] and entry["sn"] == ["Byron"] and entry["mail"] == ["ada@example.com"]
        groups = read(ldap_server, ous["groups"], "(objectClass=groupOfNames)")
        assert groups[f"cn=editor,{ous['groups']}"]["member"] == [dn]
        assert await c.find_user("userName", "ada") == created
        assert not await c.holds_no_users()
        with pytest.raises(RemoteConflict):
            await c.create_user(ADA)

        # An update changes what changed, the roles exactly; deactivating sets the attribute.
        changed = {**ADA, "name": {"givenName": "Ada", "familyName": "Lovelace"}, "active": False,
                   "roles": [{"value": "viewer"}]}
        await c.update_user(created.remote_id, [], changed)
        entry = read(ldap_server, dn)[dn]
        assert entry["sn"] == ["Lovelace"] and entry["employeeType"] == ["disabled"]
        groups = read(ldap_server, ous["groups"], "(objectClass=groupOfNames)")
        assert groups[f"cn=editor,{ous['groups']}"]["member"] == [""]
        assert groups[f"cn=viewer,{ous['groups']}"]["member"] == [dn]
        remote = await c.get_user(created.remote_id)
        assert remote is not None and not remote.active
        await c.update_user(created.remote_id, [], {**changed, "active": True})
        assert "employeeType" not in read(ldap_server, dn)[dn]

        # A new userName renames the entry; the remote id (entryUUID) stays.
        await c.update_user(created.remote_id, [], {**changed, "userName": "ada.l", "active": True})
        renamed = f"uid=ada.l,{ous['people']}"
        assert list(read(ldap_server, ous["people"], "(uid=*)")) == [renamed]
        groups = read(ldap_server, ous["groups"], "(objectClass=groupOfNames)")
        assert groups[f"cn=viewer,{ous['groups']}"]["member"] == [renamed]

        await c.delete_user(created.remote_id)
        assert await c.get_user(created.remote_id) is None
        groups = read(ldap_server, ous["groups"], "(objectClass=groupOfNames)")
        assert groups[f"cn=viewer,{ous['groups']}"]["member"] == [""]
    finally:
        await c.aclose()


@synchronously
async def test_deactivation_by_moving_and_a_dn_template(ldap_server: Slapd) -> None:
    ous = tree(ldap_server)
    c = connector(ldap_server, ous, deactivation="move", user_rdn="cn={displayName}")
    try:
        created = await c.create_user({**ADA, "displayName": "Ada, Countess"})
        dn = f"cn=Ada\\, Countess,{ous['people']}"
        assert dns(read(ldap_server, ous["people"], "(uid=ada)")) == [dn_key(dn)]
        await c.update_user(created.remote_id, [], {**ADA, "displayName": "Ada, Countess", "active": False})
        inactive = f"cn=Ada\\, Countess,{ous['inactive']}"
        assert dns(read(ldap_server, ous["inactive"], "(uid=ada)")) == [dn_key(inactive)]
        remote = await c.get_user(created.remote_id)
        assert remote is not None and not remote.active
        await c.update_user(created.remote_id, [], {**ADA, "displayName": "Ada, Countess"})
        assert dns(read(ldap_server, ous["people"], "(uid=ada)")) == [dn_key(dn)]
        with pytest.raises(TerminalError, match=r"cn=\{displayName\} gives no DN: the account has no displayName"):
            await c.create_user({"userName": "nobody"})
    finally:
        await c.aclose()


@synchronously
async def test_pushed_groups_keep_exact_members(ldap_server: Slapd) -> None:
    ous = tree(ldap_server)
    c = connector(ldap_server, ous)
    try:
        a = await c.create_user({"userName": "a"})
        b = await c.create_user({"userName": "b"})
        group = await c.create_group("Team", [a.remote_id])
        assert group.members == {a.remote_id}
        await c.update_group(group.remote_id, add=[b.remote_id], remove=[a.remote_id])
        found = await c.find_group("Team")
        assert found is not None and found.members == {b.remote_id}
        await c.replace_group(group.remote_id, "Team 2", [])
        renamed = await c.get_group(group.remote_id)
        assert renamed is not None and renamed.display_name == "Team 2" and not renamed.members
        assert [g.display_name for g in (await c.list_groups(1, 10)).items] == ["Team 2"]
        await c.delete_group(group.remote_id)
        assert await c.get_group(group.remote_id) is None
    finally:
        await c.aclose()


@synchronously
async def test_the_connection_test_says_what_failed(ldap_server: Slapd) -> None:
    ous = tree(ldap_server)
    wrong = connector(ldap_server, ous, bind_password="wrong")
    missing = connector(ldap_server, ous, users_dn=f"ou=nowhere,{SUFFIX}")
    tls = connector(ldap_server, ous, start_tls=True, ca_file=ldap_server.ca_file)
    ldaps = connector(ldap_server, ous, url=ldap_server.ldaps_url, ca_file=ldap_server.ca_file)
    unverified = connector(ldap_server, ous, url=ldap_server.ldaps_url)
    try:
        report = await wrong.test_connection()
        assert report.reason == f"bind: bind as {ADMIN_DN} failed: invalidCredentials"
        report = await missing.test_connection()
        assert report.reason == f"base DNs: users_dn ou=nowhere,{SUFFIX} does not exist"
        report = await tls.test_connection()
        assert report.ok and "(StartTLS)" in report.steps[0].detail
        assert (await ldaps.test_connection()).ok
        report = await unverified.test_connection()
        assert not report.ok and "TLS" in (report.reason or "")
    finally:
        for c in (wrong, missing, tls, ldaps, unverified):
            await c.aclose()


@synchronously
async def test_a_schema_without_inetorgperson_is_named() -> None:
    with slapd(schemas=[name for name in FULL_SCHEMA if name != "inetorgperson"]) as server:
        ous = tree(server)
        c = connector(server, ous)
        try:
            report = await c.test_connection()
            assert report.reason == "schema: the server's schema lacks objectClass inetOrgPerson"
        finally:
            await c.aclose()


@synchronously
async def test_a_group_provisiond_did_not_make_is_not_used_for_a_role(ldap_server: Slapd) -> None:
    ous = tree(ldap_server)
    conn = admin_connection(ldap_server)
    try:
        assert conn.add(f"cn=admins,{ous['groups']}", ["groupOfNames"], {"member": [""]})
    finally:
        conn.unbind()
    c = connector(ldap_server, ous)
    try:
        with pytest.raises(TerminalError, match="is not an app-role group provisiond manages"):
            await c.create_user({**ADA, "roles": [{"value": "admins"}]})
        assert await c.find_user("userName", "ada") is None  # refused before anything is written
    finally:
        await c.aclose()
