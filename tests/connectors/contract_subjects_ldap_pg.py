"""The LDAP and PostgreSQL connectors as subjects of the connector contract (issue 15's suite,
tests/connectors/contract.py on the dialects branch). Not collected (no test_ prefix) until that
suite is merged: then rename this module test_contract_ldap_pg.py. Run locally against the
dialects branch's contract.py, both pass all 24 tests (17-38 s here, under load). Its group test names roles
"Group ..." without the scratch prefix: they are dropped by the test itself, unless it fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from provisiond.connectors.destinations import DestinationPolicy
from provisiond.connectors.ldap import LdapConnector
from provisiond.connectors.postgres import PostgresRoleConnector
from provisiond.domain.connector_kinds import LdapConnectorSettings, PostgresConnectorSettings
from tests.connectors.contract import ConnectorContract, ContractSubject
from tests.support.pg_roles import Scratch, scratch
from tests.support.slapd import ADMIN_DN, ADMIN_PASSWORD, Slapd, add_ous

P = DestinationPolicy(allow_loopback=True)


class TestPg(ConnectorContract):
    @pytest.fixture
    def db(self, pg_server: str) -> Iterator[Scratch]:
        with scratch(pg_server) as made:
            yield made

    @pytest.fixture
    def subject(self, db: Scratch) -> ContractSubject:
        def mk(**kw: Any) -> Any:
            values = {"host": "127.0.0.1", "database": db.database, "username": "postgres", **kw}
            return lambda: PostgresRoleConnector(PostgresConnectorSettings(**values), policy=P)
        return ContractSubject(
            connect=mk(),
            user=lambda name: {"userName": db.prefix + name, "active": True},
            matching=("userName", lambda name: db.prefix + name),
            change=("userName", db.prefix + "renamed"),
            unreachable=mk(port=1),
            refused=mk(username=db.prefix + "nobody"),
        )


class TestLdap(ConnectorContract):
    @pytest.fixture
    def subject(self, ldap_server: Slapd) -> ContractSubject:
        ous = add_ous(ldap_server, f"k{uuid.uuid4().hex[:8]}", "people", "groups")
        def mk(**kw: Any) -> Any:
            values = {"url": ldap_server.url, "bind_dn": ADMIN_DN, "bind_password": ADMIN_PASSWORD,
                      "users_dn": ous["people"], "groups_dn": ous["groups"], **kw}
            return lambda: LdapConnector(LdapConnectorSettings(**values), policy=P)
        return ContractSubject(
            connect=mk(),
            user=lambda name: {"userName": name, "displayName": name, "active": True},
            unreachable=mk(url="ldap://127.0.0.1:1"),
            refused=mk(bind_password="wrong"),
        )
