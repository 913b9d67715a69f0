"""Build a connector from an app's stored settings (the only place that knows connector kinds)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

import httpx

from provisiond.config import Settings
from provisiond.connectors.base import BuildContext, Connector, ConnectorFactory, RateGate
from provisiond.connectors.destinations import DestinationPolicy
from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.errors import Invalid

# Connectors are found by Python entry points of this group (name: the connector kind), so a
# third party ships one as a package; the built-in kinds are registered in pyproject.toml.
ENTRY_POINT_GROUP = "provisiond.connectors"


def connector_settings(public: dict[str, Any], secrets: dict[str, str]) -> ScimConnectorSettings:
    merged = {**public, "auth": {**public.get("auth", {}), **secrets}}
    return ScimConnectorSettings.model_validate(merged)


def build_connector(
    settings: ScimConnectorSettings,
    provisioning: ProvisioningSettings,
    transport: httpx.AsyncBaseTransport | None = None,
    config: Settings | None = None,
    rate_gate: RateGate | None = None,
) -> Connector:
    """``config``: the operator's settings, for what any connector may reach and read (the
    defaults, the strictest, without it). ``rate_gate``: the app's rate limit as the cluster
    holds it, instead of the connector's own."""
    config = config or Settings()
    return ScimConnector(
        settings,
        concurrency=provisioning.concurrency,
        rate_limit_per_second=provisioning.rate_limit_per_second,
        transport=transport,
        policy=destination_policy(config),
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
