"""Every request to a target has a total deadline, not only a per-read timeout.

The hostile peer is ``tests/support/drip.py``: a real HTTP server on 127.0.0.1 that sends valid
headers at once, then the body a byte at a time. httpx's timeouts bound each read, and a byte
comes far more often than any of them, so only ``request_deadline_seconds`` can cut it.

Timing: the loaded 2-core test machine gets wide margins. A cut request must end no sooner than
its deadline (an asyncio timeout never fires early) and long before the drip would have ended
(over 15 minutes); what the server saw is waited for as a condition, never with a sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from provisiond.config import Settings
from provisiond.connectors.base import Quirks
from provisiond.connectors.registry import build_connector
from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import (
    BearerAuth,
    OAuth2ClientCredentials,
    ProvisioningSettings,
    ScimConnectorSettings,
    shown_connector,
)
from provisiond.errors import TransientError
from tests.connectors.conftest import TARGET_TOKEN
from tests.support.drip import DripTarget, StartDrip

T = TypeVar("T")

DEADLINE = 2.0
# A byte every quarter second: ten times more often than the per-read timeout (10 s by default),
# and the 4 KiB answers take over 15 minutes in all.
DRIP = 0.25
# How much later than its deadline a cut request may end on a busy machine; still a small part
# of the drip's 15 minutes.
SLACK = 20.0
# Should the connector not cut a drip, the test fails after this long instead of hanging.
GIVE_UP = 60.0


def timed(settings: ScimConnectorSettings, scenario: Callable[[ScimConnector], Awaitable[T]]) -> T:
    """Run ``scenario`` on a fresh connector built as the worker builds it, always closed."""

    async def main() -> T:
        connector = build_connector(
            settings, ProvisioningSettings(), config=Settings(connector_allow_loopback=True)
        )
        assert isinstance(connector, ScimConnector)
        try:
            async with asyncio.timeout(GIVE_UP):
                return await scenario(connector)
        except TimeoutError:
            raise AssertionError(f"the connector was still waiting after {GIVE_UP:g} s") from None
        finally:
            await connector.aclose()

    return asyncio.run(main())


def cut_at_the_deadline(
    settings: ScimConnectorSettings, scenario: Callable[[ScimConnector], Awaitable[Any]]
) -> TransientError:
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        timed(settings, scenario)
    elapsed = time.monotonic() - started
    assert settings.request_deadline_seconds <= elapsed < settings.request_deadline_seconds + SLACK
    return caught.value


def hung_up_on(target: DripTarget) -> None:
    """The connector closed the connection: nothing keeps dripping to it, nothing holds its slot."""
    target.wait_until(lambda t: t.answers_started == 1 and t.disconnects == 1)
    assert target.answers_finished == 0
    assert target.bytes_sent < target.min_body_bytes
    assert target.in_flight == 0


def test_a_dripping_answer_is_cut_at_the_total_deadline(drip_targets: StartDrip) -> None:
    target = drip_targets(delay=DRIP)
    settings = ScimConnectorSettings(base_url=target.base_url, request_deadline_seconds=DEADLINE)
    assert settings.timeout_seconds >= 10 * DRIP  # the per-read timeout alone would wait it out

    error = cut_at_the_deadline(settings, lambda connector: connector.get_user("u-1"))

    assert type(error) is TransientError and error.retryable  # the worker retries it later
    assert error.detail == (
        f"GET {target.base_url}/Users/u-1: the app did not answer within 2 s (total deadline)"
    )
    hung_up_on(target)
    assert [request.path for request in target.requests] == ["/scim/v2/Users/u-1"]


def test_a_write_is_cut_too(drip_targets: StartDrip) -> None:
    """Discovery and the lookup answer at once here; the create that follows drips."""
    target = drip_targets(delay=DRIP, drips=lambda request: request.method == "POST")
    settings = ScimConnectorSettings(base_url=target.base_url, request_deadline_seconds=DEADLINE)

    async def look_up_then_create(connector: ScimConnector) -> Any:
        assert await connector.find_user("userName", "drip.victim") is None
        return await connector.create_user({"userName": "drip.victim"})

    error = cut_at_the_deadline(settings, look_up_then_create)

    assert error.detail == (
        f"POST {target.base_url}/Users: the app did not answer within 2 s (total deadline)"
    )
    assert [request.method for request in target.requests] == ["GET", "GET", "POST"]
    # Discovery and the lookup were answered whole and at once; the create was hung up on.
    target.wait_until(lambda t: t.answers_finished == 2 and t.disconnects == 1)


def test_the_deadline_covers_fetching_an_oauth2_token(drip_targets: StartDrip) -> None:
    """The token request runs inside the API request's auth flow, so inside its deadline."""
    target = drip_targets(delay=DRIP, drips=lambda request: request.path == "/oauth/token")
    auth = OAuth2ClientCredentials(
        token_url=target.token_url, client_id="provisiond", client_secret="client-secret"
    )
    settings = ScimConnectorSettings(
        base_url=target.base_url, auth=auth, request_deadline_seconds=DEADLINE
    )

    error = cut_at_the_deadline(settings, lambda connector: connector.get_user("u-1"))

    assert "the app did not answer within 2 s (total deadline)" in error.detail
    hung_up_on(target)
    assert [request.path for request in target.requests] == ["/oauth/token"]


def test_a_connection_test_against_a_dripping_app_fails_at_the_deadline_and_says_why(
    drip_targets: StartDrip,
) -> None:
    target = drip_targets(delay=DRIP)
    settings = ScimConnectorSettings(base_url=target.base_url, request_deadline_seconds=DEADLINE)

    started = time.monotonic()
    report = timed(settings, lambda connector: connector.test_connection())
    elapsed = time.monotonic() - started

    assert not report.ok
    assert report.reason is not None and "(total deadline)" in report.reason
    assert [(step.name, step.ok) for step in report.steps] == [("discovery", False)]
    assert DEADLINE <= elapsed < DEADLINE + SLACK
    hung_up_on(target)


def test_a_slow_answer_within_the_deadline_is_read_whole(drip_targets: StartDrip) -> None:
    """The control: 16 chunks a quarter second apart take 4 s, twice the per-read timeout, and
    are read whole under the default deadline. Per-read timeouts never see a drip."""
    target = drip_targets(delay=DRIP, chunk_size=64, min_body_bytes=1024)
    settings = ScimConnectorSettings(base_url=target.base_url, timeout_seconds=2.0)
    assert settings.request_deadline_seconds == 30.0

    started = time.monotonic()
    quirks = timed(settings, lambda connector: connector.quirks())
    elapsed = time.monotonic() - started

    assert quirks == Quirks(patch=True, filter=True, max_results=100)
    assert elapsed >= 16 * DRIP > settings.timeout_seconds  # the server's pauses alone take 4 s
    # The server notes the answer finished just after its last byte: wait for the note.
    target.wait_until(lambda t: t.answers_finished == 1)
    assert target.disconnects == 0


def test_a_target_can_start_healthy_and_then_drip(drip_targets: StartDrip) -> None:
    """What a fairness test does: the app passes its connection test, then its target drips."""
    target = drip_targets(delay=0)
    settings = ScimConnectorSettings(base_url=target.base_url, request_deadline_seconds=DEADLINE)

    async def healthy_then_dripping(connector: ScimConnector) -> Any:
        report = await connector.test_connection()
        target.delay = DRIP
        try:
            await connector.get_user("u-1")
        except TransientError as exc:
            return report, exc
        raise AssertionError("the dripping answer was not cut")

    report, error = timed(settings, healthy_then_dripping)

    assert report.ok, report.as_dict()
    assert "(total deadline)" in error.detail
    target.wait_until(lambda t: t.answers_finished == 2 and t.disconnects == 1)


def test_a_normal_target_is_unaffected(scim_target: str) -> None:
    """The real scim2-server answers each request well within a short deadline."""
    settings = ScimConnectorSettings(
        base_url=scim_target, auth=BearerAuth(token=TARGET_TOKEN), request_deadline_seconds=10
    )
    user_name = f"deadline-{time.monotonic_ns()}"

    async def journey(connector: ScimConnector) -> Any:
        created = await connector.create_user({"userName": user_name, "active": True})
        found = await connector.find_user("userName", user_name)
        await connector.delete_user(created.remote_id)
        return created, found, await connector.get_user(created.remote_id)

    created, found, gone = timed(settings, journey)

    assert found is not None and found.remote_id == created.remote_id
    assert gone is None


# -- the setting ----------------------------------------------------------------------------------


def test_the_deadline_defaults_to_30_seconds_and_is_bounded() -> None:
    assert (
        ScimConnectorSettings(base_url="https://app.example/scim/v2").request_deadline_seconds == 30
    )
    for accepted in (1, 2.5, 300, "45"):
        settings = ScimConnectorSettings(
            base_url="https://app.example/scim/v2", request_deadline_seconds=accepted
        )
        assert settings.request_deadline_seconds == float(accepted)


@pytest.mark.parametrize("refused", [0, 0.5, -1, 300.5, 3600, "soon", None])
def test_a_deadline_out_of_bounds_is_refused(refused: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        ScimConnectorSettings(
            base_url="https://app.example/scim/v2", request_deadline_seconds=refused
        )
    assert [error["loc"] for error in caught.value.errors()] == [("request_deadline_seconds",)]


def test_an_app_saved_before_the_setting_existed_shows_the_default() -> None:
    stored = {"type": "scim2", "base_url": "https://app.example/scim/v2", "timeout_seconds": 5.0}
    shown = shown_connector(stored)
    assert shown["request_deadline_seconds"] == 30.0
    assert shown["timeout_seconds"] == 5.0
    assert "auth" not in shown
