"""The LDAP and PostgreSQL connectors as subjects of the connector contract (issue 15's suite,
tests/connectors/contract.py). Its group test names roles "Group ..." without the scratch
prefix: the test drops them itself, unless it fails.
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


def test_the_built_in_kinds_are_found_by_entry_point() -> None:
    from provisiond.config import Settings
    from provisiond.connectors.base import BuildContext
    from provisiond.connectors.registry import connector_factory
    from provisiond.domain.apps import ProvisioningSettings

    context = BuildContext(ProvisioningSettings(), Settings(), None)
    ldap = {"url": "ldap://127.0.0.1", "bind_dn": "cn=a", "bind_password": "x", "users_dn": "ou=p"}
    assert isinstance(connector_factory("ldap")(ldap, context), LdapConnector)
    pg = {"host": "127.0.0.1", "username": "postgres"}
    assert isinstance(connector_factory("postgresql")(pg, context), PostgresRoleConnector)
