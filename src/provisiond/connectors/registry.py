"""Build a connector from an app's stored settings (the only place that knows connector kinds)."""

from __future__ import annotations

from typing import Any

import httpx

from provisiond.config import Settings
from provisiond.connectors.base import Connector, RateGate
from provisiond.connectors.destinations import DestinationPolicy
from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings


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
