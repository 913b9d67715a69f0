"""One SCIM app's HTTP exchange: a request out and its answer read, bounded and mapped.

Everything one request needs on its way, in one place: the app's rate limit and concurrency
gate, its authentication (connectors/scim_auth.py) and cookies (httpx's client API over the
aiohttp transport, connectors/transport.py, or a transport tests inject), one total deadline
for the whole exchange, the answer's size cap counted after decompression
(connectors/bodies.py), and failures as provisiond's errors (transient, terminal, rate
limited). The requests are built here rather than by httpx's per-request merge (the merge
was a large part of the connector's CPU per exchange; tests hold the two equal).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from provisiond import __version__
from provisiond.connectors.base import RateGate
from provisiond.connectors.bodies import ACCEPT_ENCODING, read_bounded
from provisiond.connectors.destinations import DestinationPolicy
from provisiond.connectors.scim_answers import SCIM_MEDIA_TYPE, raise_for_status
from provisiond.connectors.scim_auth import scim_auth
from provisiond.connectors.transport import BOUNDED, AiohttpTransport, ReceivedCookies
from provisiond.domain.apps import ScimConnectorSettings
from provisiond.errors import TerminalError, TransientError


class ScimHttp:
    """The HTTP side of one ``ScimConnector``: safe to share between the tasks of one loop."""

    def __init__(
        self,
        settings: ScimConnectorSettings,
        *,
        concurrency: int,
        rate_limit_per_second: float | None,
        transport: httpx.AsyncBaseTransport | None,
        policy: DestinationPolicy,
        max_response_bytes: int,
        rate_gate: RateGate | None,
    ) -> None:
        self.settings = settings
        self.max_response_bytes = max_response_bytes
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.AsyncClient(
            base_url=settings.base_url + "/",
            auth=scim_auth(settings, transport, max_response_bytes, policy),
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={
                "Accept": SCIM_MEDIA_TYPE,
                "Accept-Encoding": ACCEPT_ENCODING,
                "User-Agent": f"provisiond/{__version__}",
            },
            transport=transport or AiohttpTransport(policy, limits),
            # Proxies from the environment would bypass the destination policy (the address
            # connected to would be the proxy's) and could read the app's credentials.
            trust_env=False,
        )
        # httpx 0.28 keeps the client's jar here (its public setter would copy it into a
        # plain one); cookies are kept and sent back as before.
        self.client._cookies = ReceivedCookies()
        # Absolute URLs, built here rather than merged with base_url by httpx on every request
        # (a third of httpx's cost of building one, measured); the fixed paths kept parsed.
        self._root = settings.base_url + "/"
        self._urls: dict[str, httpx.URL] = {}
        # What build_request merges into every request, merged once.
        self._headers = httpx.Headers(self.client.headers)
        self._json_headers = httpx.Headers(self.client.headers)
        self._json_headers["Content-Type"] = SCIM_MEDIA_TYPE
        self._timeouts = self.client.timeout.as_dict()
        self._gate = asyncio.Semaphore(concurrency)
        # The app's own hourly budget (its profile) paces requests too; the lower rate wins.
        rate_limit_per_second = settings.profile.paced(rate_limit_per_second)
        self.bucket: RateGate | None = rate_gate or (
            TokenBucket(rate_limit_per_second) if rate_limit_per_second else None
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        if self.bucket is not None:
            await self.bucket.take()
        content = None if body is None else json.dumps(body).encode()
        target = f"{self.settings.base_url}/{path}"
        what = f"{method} /{path.split('?')[0]}"
        deadline = self.settings.request_deadline_seconds
        async with self._gate:
            # httpx's timeouts bound each read, so a target that drips its answer a byte at a
            # time never trips them: the whole exchange (the auth flow, the send, every byte of
            # the body) gets one deadline. Waiting for the rate limit and the gate is not charged.
            timer = asyncio.timeout(deadline)
            request = self.build(method, self.url(path, params), content, what)
            try:
                async with timer:
                    # Streamed, so the size cap applies while reading, under the deadline (the
                    # aiohttp transport reads it so itself, and hands the answer over read).
                    streamed = await self.client.send(request, stream=True)
                    try:
                        response = await read_bounded(streamed, self.max_response_bytes, what)
                    finally:
                        await streamed.aclose()
            except TimeoutError as exc:
                if timer.expired():
                    raise TransientError(
                        f"{method} {target}: the app did not answer within {deadline:g} s "
                        "(total deadline)"
                    ) from exc
                raise TransientError(f"{method} {target}: timed out: {exc}") from exc
            except httpx.TimeoutException as exc:
                raise TransientError(
                    f"{method} {target}: no answer within {self.settings.timeout_seconds:g} s"
                ) from exc
            except httpx.ConnectError as exc:
                if _is_tls_failure(exc):
                    raise TerminalError(f"TLS handshake with {target} failed: {exc}") from exc
                raise TransientError(
                    f"cannot reach {target}: {exc or 'connection failed'}"
                ) from exc
            except httpx.HTTPError as exc:
                raise TransientError(f"{method} {target}: {type(exc).__name__}: {exc}") from exc
        raise_for_status(response, what)
        return response


    def build(
        self, method: str, url: httpx.URL, content: bytes | None, what: str
    ) -> httpx.Request:
        """The request ``build_request`` would build, from the client's headers merged once
        (its merge copied and normalised every default header on every request: 18 µs a
        request, this 10). With a cookie to send back, httpx's own merge builds it, Cookie
        header included."""
        extensions = {"timeout": self._timeouts, BOUNDED: (self.max_response_bytes, what)}
        headers = self._headers if content is None else self._json_headers
        if self.client.cookies:
            return self.client.build_request(
                method, url, content=content, headers=headers, extensions=extensions
            )
        return httpx.Request(method, url, headers=headers, content=content, extensions=extensions)

    def url(self, path: str, params: Mapping[str, Any] | None) -> httpx.URL:
        """The request's absolute URL; the same as httpx's merge of ``path`` and ``params``
        with the base URL (urlencode quotes as httpx.QueryParams does)."""
        if params and "/" not in path:
            # The fixed path's parsed URL with the query put in: parsing the whole URL again
            # (httpx checks and quotes it character by character) took 18 µs a lookup, this
            # 8 (bench/RESULTS.md §18). urlencode's output is what httpx would keep as it is
            # (only unreserved characters, '%', '+', '=' and '&'); tests hold the two equal.
            return _with_query(self._fixed(path), urlencode(params))
        if params:
            return httpx.URL(f"{self._root}{path}?{urlencode(params)}")
        return self._fixed(path) if "/" not in path else httpx.URL(self._root + path)

    def _fixed(self, path: str) -> httpx.URL:
        """The parsed URL of Users, Groups, ServiceProviderConfig: kept, not one per account."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self._root + path)
        return url


def _with_query(url: httpx.URL, query: str) -> httpx.URL:
    # httpx 0.28's URL is its parse result (a NamedTuple); httpx is pinned (pyproject.toml).
    built = httpx.URL.__new__(httpx.URL)
    built._uri_reference = url._uri_reference._replace(query=query)
    return built


def _is_tls_failure(exc: Exception) -> bool:
    text = repr(exc) + repr(exc.__cause__) + repr(exc.__context__)
    return any(mark in text for mark in ("SSL", "CERTIFICATE", "TLS", "certificate"))


class TokenBucket:
    """Per-app rate limit: at most ``rate`` requests a second, bursts up to one second's worth.

    A sliding window, not a refilling bucket: a bucket holding a second's worth lets a full burst
    and then the refill through within the same second (40 requests in the first second at 20/s).
    Here a request waits until the one ``capacity`` requests before it is ``window`` seconds old.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1, int(rate))
        self.window = self.capacity / rate
        self.sent: deque[float] = deque(maxlen=self.capacity)
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while len(self.sent) == self.capacity:
                wait = self.sent[0] + self.window - time.monotonic()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self.sent.append(time.monotonic())
