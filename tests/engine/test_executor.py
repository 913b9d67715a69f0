"""The executor reads an account back after deprovisioning it: one GET, and the truth kept."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import (
    BearerAuth,
    Deprovision,
    DeprovisionAction,
    ProvisioningSettings,
    ScimConnectorSettings,
)
from provisiond.engine.executor import Result, reconcile
from provisiond.engine.planner import AccountStatus, ActualAccount
from provisiond.errors import NotRevoked
from tests.support.lying import LyingTarget
from tests.support.scim_asgi import BASE_URL, RecordingTarget

SETTINGS = ProvisioningSettings(enabled=True)


async def leave(connector: ScimConnector, action: DeprovisionAction, result: Result) -> None:
    created = await connector.create_user(
        {"userName": "lea.ver", "active": True, "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User"]}
    )
    actual = ActualAccount(created.remote_id, {"userName": "lea.ver", "active": True},
                           AccountStatus.ACTIVE)
    await reconcile(connector, SETTINGS, None, actual, verify_remote=False,
                    deprovision=Deprovision(action), result=result)


class TerseTarget(RecordingTarget):
    """Answers a PATCH with 204 whatever it asks for, as an app that ignores ``attributes``."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "PATCH":
            scope = {**scope, "query_string": b""}
        await super().__call__(scope, receive, send)


def deprovision(target: RecordingTarget, action: DeprovisionAction) -> Result:
    async def scenario() -> Result:
        connector = target.connector()
        try:
            await connector.create_user({"userName": "warm.up", "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User"]})  # discovery done
            result = Result()
            target.forget()
            await leave(connector, action, result)
            return result
        finally:
            await connector.aclose()

    return asyncio.run(scenario())


def test_a_deactivation_is_read_back_from_the_apps_own_answer() -> None:
    target = RecordingTarget()
    result = deprovision(target, DeprovisionAction.DEACTIVATE)
    assert result.readback is not None and result.readback.confirmed
    assert (result.readback.action, result.readback.state) == ("deactivate", "inactive")
    remote = result.readback.remote_id
    # RFC 7644 §3.5.2: asked for "attributes", the app answers 200 with the resource; no GET.
    sent = [(r.method, r.path, r.query) for r in target.requests()]
    assert sent[1:] == [("PATCH", f"/Users/{remote}", {"attributes": ["active"]})]
    assert result.trace[-1]["step"] == "read back" and result.trace[-1]["source"] == "answer"


@pytest.mark.parametrize(("target", "action", "first", "seen"), [
    (TerseTarget(), DeprovisionAction.DEACTIVATE, "PATCH", "inactive"),
    (RecordingTarget(), DeprovisionAction.DELETE, "DELETE", "absent"),
], ids=["deactivation answered 204", "delete"])
def test_a_deprovisioning_whose_answer_shows_nothing_is_read_back_with_one_get(
    target: RecordingTarget, action: DeprovisionAction, first: str, seen: str
) -> None:
    result = deprovision(target, action)
    assert result.readback is not None
    assert (result.readback.action, result.readback.state) == (action.value, seen)
    assert result.readback.confirmed and result.readback.applied_at <= result.readback.at
    sent = [(r.method, r.path) for r in target.requests()]
    remote = result.readback.remote_id
    assert sent[1:] == [(first, f"/Users/{remote}"), ("GET", f"/Users/{remote}")]
    assert result.trace[-1]["step"] == "read back" and result.trace[-1]["confirmed"] is True
    assert "source" not in result.trace[-1]


def test_an_app_that_still_shows_the_account_active_is_not_revoked() -> None:
    liar = LyingTarget("t")
    settings = ScimConnectorSettings(base_url=BASE_URL, auth=BearerAuth(token="t"))

    async def scenario() -> Result:
        connector = ScimConnector(settings, transport=httpx.ASGITransport(app=liar))
        result = Result()
        try:
            with pytest.raises(NotRevoked, match="still active"):
                await leave(connector, DeprovisionAction.DEACTIVATE, result)
        finally:
            await connector.aclose()
        return result

    result = asyncio.run(scenario())
    assert result.readback is not None and result.readback.state == "active"
    assert not result.readback.confirmed
    assert liar.ignored and result.trace[-1]["confirmed"] is False


class StrictQueryTarget(RecordingTarget):
    """Refuses a PATCH carrying any query parameter with 400, as some apps do."""

    refused: list[bytes]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "PATCH" and scope["query_string"]:
            self.refused.append(scope["query_string"])
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/scim+json")]})
            await send({"type": "http.response.body", "body": b'{"schemas": ['
                        b'"urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",'
                        b' "scimType": "invalidSyntax", "detail": "unknown parameter"}'})
            return
        await super().__call__(scope, receive, send)


def test_an_app_that_refuses_the_attributes_parameter_still_loses_the_account() -> None:
    target = StrictQueryTarget()
    target.refused = []

    async def scenario() -> tuple[Result, Result]:
        connector = target.connector()
        try:
            await connector.create_user({"userName": "warm.up", "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User"]})
            first, second = Result(), Result()
            target.forget()
            await leave(connector, DeprovisionAction.DEACTIVATE, first)
            created = await connector.create_user({"userName": "sec.ond", "active": True,
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})
            actual = ActualAccount(created.remote_id, {"userName": "sec.ond", "active": True},
                                   AccountStatus.ACTIVE)
            await reconcile(connector, SETTINGS, None, actual, verify_remote=False,
                            deprovision=Deprovision(DeprovisionAction.DEACTIVATE), result=second)
            return first, second
        finally:
            await connector.aclose()

    first, second = asyncio.run(scenario())
    for result in (first, second):
        assert result.readback is not None and result.readback.confirmed
        assert result.readback.state == "inactive"
    # The first deactivation asked once with the parameter (refused), then without; the
    # second, without; each read back by a GET.
    assert target.refused == [b"attributes=active"]
    sent = [(r.method, r.query) for r in target.requests() if r.method in ("PATCH", "GET")]
    assert [m for m, q in sent if m == "PATCH" and not q] == ["PATCH", "PATCH"]
