"""The connector destination policy: checked on the address connected to, for every request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import httpx
import pytest

from provisiond.config import Settings
from provisiond.connectors.destinations import (
    DestinationPolicy,
    DestinationRefused,
    GuardedBackend,
    guarded_transport,
)
from provisiond.connectors.registry import build_connector, destination_policy
from provisiond.connectors.scim import ScimConnector
from provisiond.connectors.transport import AiohttpTransport
from provisiond.domain.apps import (
    NoAuth,
    OAuth2ClientCredentials,
    ProvisioningSettings,
    ScimConnectorSettings,
)
from tests.connectors.conftest import LOOPBACK, LoopbackServer, Responder

T = TypeVar("T")
DEFAULT = DestinationPolicy()


def listing(_: object) -> tuple[int, dict[str, str], bytes]:
    body = b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0}'
    return 200, {"Content-Type": "application/scim+json"}, body


def run(
    connector: ScimConnector, scenario: Callable[[ScimConnector], Awaitable[T]]
) -> T:
    async def main() -> T:
        try:
            async with asyncio.timeout(60):
                return await scenario(connector)
        finally:
            await connector.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("::ffff:169.254.169.254", "cloud metadata"),  # IPv4-mapped
        ("::ffff:a9fe:a9fe", "cloud metadata"),  # the same, in hex
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64
        ("::169.254.169.254", "cloud metadata"),  # IPv4-compatible (deprecated)
        ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "loopback"),  # noqa: S104  (reaches the host's own listeners)
        ("::", "loopback"),
    ],
)
def test_the_default_policy_refuses(address: str, why: str) -> None:
    refusal = DEFAULT.refusal(address)
    assert refusal is not None and why in refusal


@pytest.mark.parametrize("address", ["93.184.216.34", "10.1.2.3", "2606:4700::1111"])
def test_the_default_policy_lets_other_addresses_through(address: str) -> None:
    assert DEFAULT.refusal(address) is None


def test_loopback_only_when_allowed_and_metadata_never_by_that() -> None:
    assert LOOPBACK.refusal("127.0.0.1") is None
    assert LOOPBACK.refusal("::1") is None
    assert LOOPBACK.refusal("169.254.169.254") is not None


def test_allowed_networks_make_an_allow_list_and_denied_ones_always_win() -> None:
    policy = DestinationPolicy.of(
        allow_loopback=False, allowed=["10.0.0.0/8"], denied=["10.66.0.0/16"]
    )
    assert policy.refusal("10.1.2.3") is None
    assert "DENIED_NETWORKS" in str(policy.refusal("10.66.1.1"))
    assert "ALLOWED_NETWORKS" in str(policy.refusal("93.184.216.34"))
    assert "ALLOWED_NETWORKS" in str(policy.refusal("169.254.169.254"))
    explicit = DestinationPolicy.of(allow_loopback=False, allowed=["169.254.169.254/32"])
    assert explicit.refusal("169.254.169.254") is None  # the operator named it


def test_the_settings_read_networks_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROVISIOND_CONNECTOR_DENIED_NETWORKS", "10.66.0.0/16, 192.168.0.0/16")
    monkeypatch.setenv("PROVISIOND_CONNECTOR_ALLOWED_NETWORKS", '["10.0.0.0/8"]')
    monkeypatch.setenv("PROVISIOND_CONNECTOR_ALLOW_LOOPBACK", "true")
    monkeypatch.setenv("PROVISIOND_CONNECTOR_MAX_RESPONSE_BYTES", "1048576")
    settings = Settings()
    assert settings.connector_denied_networks == ["10.66.0.0/16", "192.168.0.0/16"]
    assert settings.connector_allowed_networks == ["10.0.0.0/8"]
    assert settings.connector_max_response_bytes == 1_048_576
    policy = destination_policy(settings)
    assert policy.allow_loopback and policy.refusal("127.0.0.1") is None
    assert policy.refusal("10.1.2.3") is None
    assert "DENIED" in str(policy.refusal("10.66.1.1"))
    assert "ALLOWED" in str(policy.refusal("192.0.2.1"))


def test_a_network_that_is_not_one_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROVISIOND_CONNECTOR_DENIED_NETWORKS", "10.0.0.0/8,not-a-net")
    with pytest.raises(ValueError, match="'not-a-net' is not a network"):
        Settings()


def test_a_loopback_app_is_refused_by_default_and_nothing_reaches_it(
    serve: Callable[[Responder], LoopbackServer],
) -> None:
    server = serve(listing)
    for host in ("127.0.0.1", "localhost"):  # a name is checked on what it resolves to
        url = server.url.replace("127.0.0.1", host) + "/v2"
        connector = build_connector(
            ScimConnectorSettings(base_url=url, auth=NoAuth()), ProvisioningSettings()
        )
        assert isinstance(connector, ScimConnector)
        with pytest.raises(DestinationRefused, match="loopback address") as refused:
            run(connector, lambda c: c.holds_no_users())
        assert "destination policy" in str(refused.value.detail)
    assert server.requests == []
    allowed = build_connector(
        ScimConnectorSettings(base_url=server.url + "/v2", auth=NoAuth()),
        ProvisioningSettings(),
        config=Settings(connector_allow_loopback=True),
    )
    assert isinstance(allowed, ScimConnector)
    assert run(allowed, lambda c: c.holds_no_users()) is True
    assert len(server.requests) == 1


def test_a_name_that_rebinds_to_the_metadata_address_is_refused_at_connect_time(
    serve: Callable[[Responder], LoopbackServer],
) -> None:
    """The name pointed at an allowed peer when the app was saved and first used; now it says
    169.254.169.254. (An injected resolver: the fault is the DNS answer, which no local peer
    can give; the first connection is real.)"""
    server = serve(listing)
    port = int(server.url.rsplit(":", 1)[1])
    answers: list[Sequence[str]] = [["127.0.0.1"], ["169.254.169.254"]]

    async def rebinding(host: str, port: int) -> Sequence[str]:
        return answers.pop(0)

    backend = GuardedBackend(LOOPBACK, rebinding)

    async def main() -> None:
        stream = await backend.connect_tcp("app.example", port, timeout=5)
        await stream.aclose()
        with pytest.raises(DestinationRefused, match=r"app\.example \(169\.254\.169\.254\)"):
            await backend.connect_tcp("app.example", port, timeout=5)

    asyncio.run(main())
    assert answers == []


def test_a_name_with_one_denied_address_among_others_is_refused() -> None:
    async def split(host: str, port: int) -> Sequence[str]:
        return ["93.184.216.34", "::ffff:169.254.169.254"]

    backend = GuardedBackend(DestinationPolicy(), split)
    with pytest.raises(DestinationRefused, match="cloud metadata"):
        asyncio.run(backend.connect_tcp("two-faced.example", 443, timeout=5))


def test_the_policy_holds_for_every_request_through_the_transport() -> None:
    """httpx's own client over the guarded transport: the metadata URL is never fetched."""

    async def main() -> None:
        transport = guarded_transport(DestinationPolicy(), httpx.Limits())
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            with pytest.raises(DestinationRefused, match="cloud metadata"):
                await client.get("http://169.254.169.254/latest/meta-data/")
            with pytest.raises(DestinationRefused, match="cloud metadata"):
                await client.get("http://[::ffff:169.254.169.254]/latest/meta-data/")

    asyncio.run(main())


def test_the_connectors_transport_refuses_literals_and_names_that_resolve_to_them(
    serve: Callable[[Responder], LoopbackServer],
) -> None:
    """The aiohttp transport the connector sends through: an IP literal is checked before the
    request goes out (aiohttp does not resolve one), a name on every address it resolves to,
    each time a connection is opened (the first connection to the name is real)."""
    server = serve(listing)
    port = int(server.url.rsplit(":", 1)[1])
    answers: list[Sequence[str]] = [["127.0.0.1"], ["127.0.0.1", "169.254.169.254"]]

    async def rebinding(host: str, port: int) -> Sequence[str]:
        return answers.pop(0)

    async def main() -> None:
        transport = AiohttpTransport(LOOPBACK, httpx.Limits(max_connections=1), rebinding)
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            for url in ("http://169.254.169.254/latest/", "http://[::ffff:a9fe:a9fe]/latest/"):
                with pytest.raises(DestinationRefused, match="cloud metadata"):
                    await client.get(url)
            first = await client.get(f"http://app.example:{port}/v2/Users")
            assert first.status_code == 200
            await first.aclose()  # unread: its connection is dropped, the next one connects
            with pytest.raises(DestinationRefused, match=r"app\.example \(169\.254\.169\.254\)"):
                await client.get(f"http://app.example:{port}/v2/Users")

    asyncio.run(main())
    assert answers == [] and len(server.requests) == 1


def test_the_oauth_token_endpoint_is_held_to_the_policy_too(
    serve: Callable[[Responder], LoopbackServer],
) -> None:
    server = serve(listing)
    settings = ScimConnectorSettings(
        base_url=server.url + "/v2",
        auth=OAuth2ClientCredentials(
            token_url="http://169.254.169.254/token",  # type: ignore[arg-type]
            client_id="c",
            client_secret="s",  # type: ignore[arg-type]
        ),
    )
    connector = ScimConnector(settings, policy=LOOPBACK)
    with pytest.raises(DestinationRefused, match=r"169\.254\.169\.254: it is a cloud metadata"):
        run(connector, lambda c: c.holds_no_users())
    assert server.requests == []  # no request goes out without its token
