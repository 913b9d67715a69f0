"""Build a connector from an app's stored settings (the only place that knows connector kinds)."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import TypeAdapter

from provisiond.config import Settings
from provisiond.connectors.base import Connector
from provisiond.connectors.destinations import DestinationPolicy
from provisiond.connectors.ldap import LdapConnector
from provisiond.connectors.postgres import PostgresRoleConnector
from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import (
    AnyConnectorSettings,
    ConnectorSettings,
    ProvisioningSettings,
    ScimConnectorSettings,
    connector_kind,
)
from provisiond.domain.connector_kinds import LdapConnectorSettings, PostgresConnectorSettings

_SETTINGS: TypeAdapter[AnyConnectorSettings] = TypeAdapter(ConnectorSettings)


def connector_settings(public: dict[str, Any], secrets: dict[str, str]) -> AnyConnectorSettings:
    """An app's settings from its stored halves: a SCIM app's secrets belong in its ``auth``,
    another kind's are fields of its own (``password``, ``bind_password``)."""
    if connector_kind(public) == "scim":
        merged = {**public, "auth": {**public.get("auth", {}), **secrets}}
    else:
        merged = {**public, **secrets}
    return _SETTINGS.validate_python(merged)


def parse_connector(value: Any) -> AnyConnectorSettings:
    """Settings as an admin sends them (a dict), of the kind they name (``scim`` by default)."""
    return _SETTINGS.validate_python(value)


def build_connector(
    settings: AnyConnectorSettings,
    provisioning: ProvisioningSettings,
    transport: httpx.AsyncBaseTransport | None = None,
    config: Settings | None = None,
) -> Connector:
    """``config``: the operator's settings, for what any connector may reach and read (the
    defaults, the strictest, without it)."""
    config = config or Settings()
    policy = destination_policy(config)
    if isinstance(settings, PostgresConnectorSettings):
        return PostgresRoleConnector(
            settings, concurrency=provisioning.concurrency, policy=policy
        )
    if isinstance(settings, LdapConnectorSettings):
        return LdapConnector(settings, concurrency=provisioning.concurrency, policy=policy)
    assert isinstance(settings, ScimConnectorSettings)
    return ScimConnector(
        settings,
        concurrency=provisioning.concurrency,
        rate_limit_per_second=provisioning.rate_limit_per_second,
        transport=transport,
        policy=policy,
        max_response_bytes=config.connector_max_response_bytes,
    )


def destination_policy(config: Settings) -> DestinationPolicy:
    return DestinationPolicy.of(
        allow_loopback=config.connector_allow_loopback,
        allowed=config.connector_allowed_networks,
        denied=config.connector_denied_networks,
    )
