"""A strict SCIM peer: scim2-server behind a layer that enforces one dialect profile to the letter.

Real apps are stricter than scim2-server in the ways they differ from each other; this peer is
each of them in turn. Given a ``ScimProfile`` it

- refuses a PATCH (501, RFC 7644 §3.12) when the profile is PUT-only, and a group PATCH when
  members change by PUT;
- refuses a user PATCH operation that has a path when the profile is no-path only, an op in the
  other case than the profile's ("replace" for a capitalised one, "Replace" for the RFC), a
  filtered member path when members go by value list, and the reverse;
- refuses ``filter`` (501) when the profile has none, and announces so in its
  ServiceProviderConfig;
- ignores ``count`` when the profile says it is not honoured (pages of ``own_page_size``);
- answers with string booleans (``"active": "False"``) when the profile encodes them so.

Faults a test turns on: ``announce=False`` (the ServiceProviderConfig claims PATCH and filters
whatever the app does, as some apps' do) and ``stale_removals`` (a group PATCH that removes a
member answers 200 with the group, the member still in it). Group PATCHes are answered 200 with
the group, as many apps do, so the connector can check what the app holds.

Serve it over real HTTP with ``tests.support.servers.serve_app`` (it answers ``/healthz``), or
in process with ``connector()``.
"""

from __future__ import annotations

import json
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx

from provisiond.connectors.scim import ScimConnector
from provisiond.connectors.scim_dialect import stringified
from provisiond.demo.target import build
from provisiond.domain.apps import BearerAuth, NoAuth, ScimConnectorSettings
from provisiond.domain.dialects import ScimProfile
from tests.support.scim_asgi import Received

BASE_URL = "http://strict.test/v2"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
_FILTERED = re.compile(r'^members\[value eq "(?P<value>(?:[^"\\]|\\.)*)"\]$')


@dataclass
class StrictTarget:
    """ASGI: scim2-server enforcing ``profile``; ``received`` is every request, in order."""

    profile: ScimProfile = field(default_factory=ScimProfile)
    token: str | None = None
    announce: bool = True
    stale_removals: bool = False
    own_page_size: int = 3
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why each refusal was made

    def __post_init__(self) -> None:
        self.inner: Any = build([self.token] if self.token else [], patch=not self.put_only)
        config = self.inner.service.config
        config.filter.supported = self.profile.filters
        if not self.announce:  # the app claims what it lacks: what it does is what counts
            self._announced = {"patch": {"supported": True}, "filter": {"supported": True}}
        else:
            self._announced = {}

    @property
    def put_only(self) -> bool:
        return self.profile.put_only

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        if scope["path"] == "/healthz":
            await _answer(send, 200, {"ok": True})
            return
        raw = await _read(receive)
        path = scope["path"].removeprefix("/v2")
        query = parse_qs(scope["query_string"].decode())
        body = json.loads(raw) if raw else None
        self.received.append(Received(scope["method"], path, query, body))
        refusal = self._refusal(scope["method"], path, query, body)
        if refusal is not None:
            status, scim_type, detail = refusal
            self.refused.append(detail)
            await _answer(send, status, _error(status, scim_type, detail))
            return
        query, body = self._rewritten(scope["method"], path, query, body)
        status, headers, out = await self._inner(scope, scope["method"], path, query, body)
        if scope["method"] == "PATCH" and path.startswith("/Groups/") and status == 204:
            # Answer with the group, as many apps do: what the app holds after the change.
            status, headers, out = await self._inner(scope, "GET", path, {}, None)
        out = self._shown(path, status, out)
        await _answer(send, status, out, headers)

    # -- what the profile refuses -------------------------------------------------------------

    def _refusal(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, str | None, str] | None:
        profile = self.profile
        if method == "GET" and "filter" in query and not profile.filters:
            return 501, None, "Filtering is not supported"
        if method != "PATCH" or not isinstance(body, dict):
            return None
        if self.put_only:
            return 501, None, "PATCH is not supported"
        operations = body.get("Operations") or []
        for operation in operations:
            op = str(operation.get("op", ""))
            wanted = op.capitalize() if profile.op_case == "capitalised" else op.lower()
            if op != wanted:
                return 400, "invalidSyntax", f"op {op!r}: this app expects {wanted!r}"
        if path.startswith("/Users/"):
            if profile.patch == "no-path" and any("path" in o for o in operations):
                return 400, "invalidPath", "this app takes PATCH replace without a path only"
            return None
        if path.startswith("/Groups/"):
            return self._membership_refusal(operations)
        return None

    def _membership_refusal(
        self, operations: list[dict[str, Any]]
    ) -> tuple[int, str | None, str] | None:
        style = self.profile.membership
        if style == "put":
            return 501, None, "PATCH of groups is not supported: PUT the group"
        for operation in operations:
            op, where = str(operation.get("op", "")).lower(), str(operation.get("path", ""))
            if not where.startswith("members"):
                continue
            if style == "value-list" and "[" in where:
                return 400, "invalidPath", "this app removes members by value, not by filter"
            if style == "value-filter" and op == "remove" and where == "members":
                return 400, "invalidPath", "this app removes members by members[value eq ...]"
            if style == "replace" and op != "replace":
                return 400, "invalidPath", "this app changes members by replace only"
        return None

    # -- what the inner server is given -------------------------------------------------------

    def _rewritten(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[dict[str, list[str]], Any]:
        if method == "GET" and not self.profile.count_honoured and "count" in query:
            query = {**query, "count": [str(self.own_page_size)]}
        if method == "PATCH" and isinstance(body, dict) and path.startswith("/Groups/"):
            operations = []
            for operation in body.get("Operations") or []:
                op, where = str(operation.get("op", "")).lower(), operation.get("path")
                if op == "remove" and where == "members" and operation.get("value"):
                    # Entra's dialect: remove these values (scim2-server would remove them all).
                    operations += [
                        {"op": "remove", "path": f'members[value eq "{m["value"]}"]'}
                        for m in operation["value"]
                    ]
                elif op == "remove" and self.stale_removals and str(where).startswith("members"):
                    continue  # the fault: answered as done, not done
                else:
                    operations.append({**operation, "op": op})
            if not operations:
                operations = [{"op": "add", "path": "members", "value": []}]
            body = {**body, "Operations": operations}
        return query, body

    async def _inner(
        self,
        scope: MutableMapping[str, Any],
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        content = b"" if body is None else json.dumps(body).encode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(content)).encode()))
        inner_scope = {
            **scope,
            "method": method,
            "path": "/v2" + path,
            "raw_path": ("/v2" + path).encode(),
            "query_string": urlencode(query, doseq=True).encode(),
            "headers": headers,
        }
        sent = False
        answer: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": content, "more_body": False}

        async def capture(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"], answer["headers"] = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await self.inner(inner_scope, replay, capture)
        return answer["status"], answer["headers"], answer["body"]

    def _shown(self, path: str, status: int, out: bytes) -> Any:
        if not out:
            return None
        try:
            body = json.loads(out)
        except ValueError:
            return out
        if path == "/ServiceProviderConfig" and self._announced:
            body = {**body, **{k: {**body.get(k, {}), **v} for k, v in self._announced.items()}}
        if path.startswith("/Users") and self.profile.booleans == "string" and status < 300:
            body = stringified(body)
        return body


def _error(status: int, scim_type: str | None, detail: str) -> dict[str, Any]:
    body = {"schemas": [ERROR], "status": str(status), "detail": detail}
    return {**body, "scimType": scim_type} if scim_type else body


async def _read(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _answer(
    send: Any, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    if body is None:
        content = b""
    elif isinstance(body, bytes):
        content = body
    else:
        content = json.dumps(body).encode()
    kept = [(k, v) for k, v in headers or [] if k.lower() not in (b"content-length",)]
    if not any(k.lower() == b"content-type" for k, _ in kept) and content:
        kept.append((b"content-type", b"application/scim+json"))
    kept.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": content})


def connector(
    target: StrictTarget, profile: ScimProfile | None = None, *, token: str | None = None
) -> ScimConnector:
    """A connector to ``target`` in process, speaking ``profile`` (the target's by default),
    with the target's token unless another is given."""
    token = token or target.token
    auth = BearerAuth(token=token) if token else NoAuth()
    settings = ScimConnectorSettings(
        base_url=BASE_URL, auth=auth, profile=profile or target.profile
    )
    return ScimConnector(settings, transport=httpx.ASGITransport(app=target))


def client(target: StrictTarget) -> httpx.AsyncClient:
    """A plain client of the app, for arranging it behind the connector's back."""
    headers = {"Content-Type": "application/scim+json"}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=target), base_url=BASE_URL, headers=headers
    )
