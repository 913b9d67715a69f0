"""The SCIM connector passes the connector contract (tests/connectors/contract.py), speaking
each shipped dialect profile to a strict peer that enforces it (tests/support/strict.py)."""

from __future__ import annotations

from typing import Any

import pytest

from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import BearerAuth, ScimConnectorSettings
from provisiond.domain.dialects import SHIPPED, shipped_profile
from tests.connectors.conftest import LOOPBACK, free_port
from tests.connectors.contract import ConnectorContract, ContractSubject
from tests.support.strict import StrictTarget, connector

TOKEN = "contract-token"


def scim_user(name: str) -> dict[str, Any]:
    return {
        "userName": name,
        "active": True,
        "name": {"givenName": name.title(), "familyName": "Contract"},
        "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}],
    }


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def scim_subject(request: pytest.FixtureRequest) -> ContractSubject:
    """One strict peer per profile, shared by the contract's tests (each makes its own names)."""
    profile = shipped_profile(request.param)
    # Pages smaller than asked for, whatever the profile: paging must not rely on count.
    target = StrictTarget(profile.model_copy(update={"count_honoured": False}), token=TOKEN)

    def refused() -> ScimConnector:
        return connector(target, profile, token="not-the-token")

    def unreachable() -> ScimConnector:
        settings = ScimConnectorSettings(
            base_url=f"http://127.0.0.1:{free_port()}/v2",
            auth=BearerAuth(token=TOKEN),
            profile=profile,
        )
        return ScimConnector(settings, policy=LOOPBACK)

    return ContractSubject(
        connect=lambda: connector(target, profile),
        user=scim_user,
        unreachable=unreachable,
        refused=refused,
    )


class TestScimContract(ConnectorContract):
    @pytest.fixture
    def subject(self, scim_subject: ContractSubject) -> ContractSubject:
        return scim_subject
