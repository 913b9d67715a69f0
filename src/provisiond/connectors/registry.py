"""Build a connector from an app's stored settings (the only place that knows connector kinds)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

import httpx
from pydantic import TypeAdapter

from provisiond.config import Settings
from provisiond.connectors.base import BuildContext, Connector, ConnectorFactory, RateGate
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
from provisiond.errors import Invalid

_SETTINGS: TypeAdapter[AnyConnectorSettings] = TypeAdapter(ConnectorSettings)
# Connectors are found by Python entry points of this group (name: the connector kind), so a
# third party ships one as a package; the built-in kinds are registered in pyproject.toml.
ENTRY_POINT_GROUP = "provisiond.connectors"


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
    rate_gate: RateGate | None = None,
) -> Connector:
    """``config``: the operator's settings, for what any connector may reach and read (the
    defaults, the strictest, without it). ``rate_gate``: the app's rate limit as the cluster
    holds it, instead of the connector's own."""
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
        rate_gate=rate_gate,
    )


def destination_policy(config: Settings) -> DestinationPolicy:
    return DestinationPolicy.of(
        allow_loopback=config.connector_allow_loopback,
        allowed=config.connector_allowed_networks,
        denied=config.connector_denied_networks,
    )


# -- connector kinds found by entry points ------------------------------------------------------


@cache
def installed_kinds() -> dict[str, EntryPoint]:
    """Every installed connector kind, by name (read once: installing one needs a restart)."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def connector_factory(kind: str) -> ConnectorFactory:
    """The factory of connector ``kind``, from the installed entry points."""
    point = installed_kinds().get(kind)
    if point is None:
        known = ", ".join(sorted(installed_kinds())) or "none"
        raise Invalid(f"no connector of kind {kind!r} is installed (installed: {known})")
    factory = point.load()
    if not callable(factory):
        raise Invalid(f"the entry point of connector kind {kind!r} names no factory")
    return cast(ConnectorFactory, factory)


def build_scim(settings: Mapping[str, Any], context: BuildContext) -> Connector:
    """The built-in ``scim`` kind, as its entry point builds it."""
    # The kind is how the factory was chosen, not a SCIM setting.
    own = {name: value for name, value in settings.items() if name != "kind"}
    return build_connector(
        ScimConnectorSettings.model_validate(own),
        context.provisioning,
        context.transport,
        context.config,
        rate_gate=context.rate_gate,
    )


def build_ldap(settings: Mapping[str, Any], context: BuildContext) -> Connector:
    """The built-in ``ldap`` kind, as its entry point builds it."""
    return build_connector(
        LdapConnectorSettings.model_validate({**settings, "kind": "ldap"}),
        context.provisioning,
        context.transport,
        context.config,
    )


def build_postgresql(settings: Mapping[str, Any], context: BuildContext) -> Connector:
    """The built-in ``postgresql`` kind, as its entry point builds it."""
    return build_connector(
        PostgresConnectorSettings.model_validate({**settings, "kind": "postgresql"}),
        context.provisioning,
        context.transport,
        context.config,
    )
