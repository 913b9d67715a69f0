"""The stock scim2-server in process, recording what it receives.

For tests that need many examples (hypothesis) or that count requests at the server side: the
real scim2-server ASGI application, in the dialect the test asks for (PATCH, filter, page size,
all read from its ServiceProviderConfig as for any app), behind httpx's ASGI transport. The
recorder sees every request the connector sends, so request counts are the app's, not the
connector's own account of them.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from scim2_models import ScimProvider
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import NoAuth, ScimConnectorSettings

BASE_URL = "http://target.test/v2"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # without the /v2 prefix: /Groups, /Groups/{id}, /ServiceProviderConfig
    query: dict[str, list[str]]
    body: Any  # the decoded JSON, or None

    @property
    def discovery(self) -> bool:
        return self.path == "/ServiceProviderConfig"


@dataclass
class RecordingTarget:
    """ASGI: scim2-server, announcing the dialect given, keeping a list of what it received."""

    patch: bool = True
    filter: bool = True
    max_results: int | None = None
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        config = load_default_service_provider_config()
        assert config.patch is not None and config.filter is not None
        config.patch.supported = self.patch
        config.filter.supported = self.filter
        if self.max_results is not None:
            config.filter.max_results = self.max_results
        provider = ScimProvider.from_discovery(
            load_default_schemas().values(), load_default_resource_types().values(), config=config
        )
        # Typed loosely: scim2-server annotates ASGI scopes as dict, httpx as MutableMapping.
        self.inner: Any = ASGIApplication(AsyncInMemoryStorage(), provider)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def tee() -> MutableMapping[str, Any]:
            message: MutableMapping[str, Any] = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        await self.inner(scope, tee, send)
        raw = b"".join(chunks)
        self.received.append(
            Received(
                method=scope["method"],
                path=scope["path"].removeprefix("/v2"),
                query=parse_qs(scope["query_string"].decode()),
                body=json.loads(raw) if raw else None,
            )
        )

    def requests(self) -> list[Received]:
        """What the app received, discovery (a read of ServiceProviderConfig) aside."""
        return [seen for seen in self.received if not seen.discovery]

    def forget(self) -> None:
        self.received.clear()

    def connector(self) -> ScimConnector:
        """A connector to this app, through the ASGI transport (close it with ``aclose``)."""
        settings = ScimConnectorSettings(base_url=BASE_URL, auth=NoAuth())
        return ScimConnector(settings, transport=httpx.ASGITransport(app=self))

    def client(self) -> httpx.AsyncClient:
        """A plain HTTP client to the app, for arranging and inspecting it behind the connector's
        back (requests it sends are recorded too: ``forget`` them before counting)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self),
            base_url=BASE_URL,
            headers={"Content-Type": "application/scim+json"},
        )


async def add_group(client: httpx.AsyncClient, name: str, members: list[str]) -> str:
    """Create a group directly in the app (as its own admins would); returns its id."""
    body = {
        "schemas": [CORE_GROUP],
        "displayName": name,
        "members": [{"value": member} for member in members],
    }
    response = await client.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    group_id: str = response.json()["id"]
    return group_id


async def read_group(client: httpx.AsyncClient, group_id: str) -> tuple[str, set[str]] | None:
    """The group's displayName and member values as the app holds them, or None if gone."""
    response = await client.get(f"/Groups/{group_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body = response.json()
    return body["displayName"], {m["value"] for m in body.get("members") or []}


async def all_groups(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """(id, displayName) of every group in the app, read without a filter."""
    found: list[tuple[str, str]] = []
    start = 1
    while True:
        response = await client.get("/Groups", params={"startIndex": start, "count": 1000})
        assert response.status_code == 200, response.text
        page = response.json().get("Resources") or []
        found += [(group["id"], group["displayName"]) for group in page]
        start += len(page)
        if not page or start > response.json()["totalResults"]:
            return found
