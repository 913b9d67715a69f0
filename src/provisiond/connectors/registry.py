"""Build a connector from an app's stored settings (the only place that knows connector kinds)."""

from __future__ import annotations

from typing import Any

import httpx

from provisiond.connectors.base import Connector
from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings


def connector_settings(public: dict[str, Any], secrets: dict[str, str]) -> ScimConnectorSettings:
    merged = {**public, "auth": {**public.get("auth", {}), **secrets}}
    return ScimConnectorSettings.model_validate(merged)


def build_connector(
    settings: ScimConnectorSettings,
    provisioning: ProvisioningSettings,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Connector:
    return ScimConnector(
        settings,
        concurrency=provisioning.concurrency,
        rate_limit_per_second=provisioning.rate_limit_per_second,
        transport=transport,
    )
