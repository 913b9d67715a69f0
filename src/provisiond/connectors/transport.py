"""The connector's HTTP transport: httpx's client API over aiohttp's connection pool.

Why: the worker is bound by one core, and httpx's own transport (httpcore, h11 and anyio) was
the largest part of its CPU per created user: ~1.1 ms of ~3.4 ms measured with py-spy
(bench/RESULTS.md §12), much of it httpcore checking every pooled connection's liveness through
anyio on each request. aiohttp's pool and C parser do the same exchange for a quarter of that
(bench/http_clients.py). The connector keeps talking httpx (``httpx.AsyncClient``, its auth
flows, its exceptions, the transports tests inject), so only this seam changed:

* the destination policy is checked on every address a name resolves to (``GuardedResolver``,
  no DNS cache: each new connection resolves and checks again) and on an IP literal before
  the request goes out, since aiohttp does not resolve those;
* bodies arrive undecoded (``auto_decompress`` off), so connectors.bodies inflates them in
  bounded steps as before; no redirect is followed, no environment proxy used;
* aiohttp's errors become httpx's (``ConnectError``, ``ReadTimeout``, ...), which the
  connector already maps to transient and terminal failures.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from provisiond.connectors.bodies import decoded_headers, inflated
from provisiond.connectors.destinations import (
    DestinationPolicy,
    Resolver,
    checked_addresses,
    refuse,
    system_resolver,
    tls_context,
)

# A request extension, ``(limit, what)``: read the answer here, inflated in bounded steps
# (connectors.bodies), and hand it over as a response already read. The same bound as
# ``read_bounded`` on the streamed answer, without a second httpx.Response built around the
# body and httpx's stream wrappers on the way (~10 µs and more per answer, bench/RESULTS.md §18).
BOUNDED = "provisiond.bounded"


class GuardedResolver(AbstractResolver):
    """Resolves a name and refuses it if any of its addresses is one the policy refuses; the
    connection then goes to the checked addresses only (never resolved twice)."""

    def __init__(self, policy: DestinationPolicy, resolve: Resolver = system_resolver) -> None:
        self.policy = policy
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await checked_addresses(
            self.policy, self._resolve, host, port, httpx.ConnectError
        )
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` sending through one ``aiohttp.ClientSession`` (a pool of
    ``limits.max_connections`` keep-alive connections), opened on first use in the running
    event loop."""

    def __init__(
        self,
        policy: DestinationPolicy,
        limits: httpx.Limits,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.policy = policy
        self._limits = limits
        self._resolver = GuardedResolver(policy, resolve)
        self._session: aiohttp.ClientSession | None = None
        self._literals: set[str] = set()  # IP-literal hosts checked already
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry,
            use_dns_cache=False,  # every new connection resolves, and is checked, again
            resolver=self._resolver,
            ssl=tls_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # connectors.bodies inflates with a bound
            trust_env=False,  # a proxy would hide the address connected to
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        return self._session

    def _check_literal(self, host: str) -> None:
        if host in self._literals:
            return
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return  # a name: GuardedResolver checks what it resolves to
        refuse(self.policy, host, [host])
        self._literals.add(host)

    def _timeout(self, timeouts: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = tuple(sorted(timeouts.items()))
        found = self._timeouts.get(key)
        if found is None:
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None,
                connect=timeouts.get("pool"),
                sock_connect=timeouts.get("connect"),
                sock_read=timeouts.get("read"),
            )
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        self._check_literal(url.host)
        session = self._session or self._open()
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        try:
            response = await session.request(
                request.method,
                URL(str(url), encoded=True),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request.extensions.get("timeout", {})),
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc, request) from exc
        extensions = {
            "http_version": b"HTTP/1.1",
            # A reason phrase aiohttp decoded from bytes that are not latin-1 (a hostile or
            # broken app): replaced, where encoding it raised a bare UnicodeEncodeError.
            "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
        }
        # The raw bytes as received: httpx keeps bytes as they are, where a decoded str is
        # encoded back, header by header (and refused if it is not ASCII).
        raw = list(response.raw_headers)
        stream = _Body(response, request)
        bounded = request.extensions.get(BOUNDED)
        # A 401 goes back unread: the OAuth 2.0 auth flow fetches a new token and sends the
        # request again whatever that answer holds (an odd encoding, a body over the cap);
        # the answer that reaches the connector is read under the cap after the flow.
        if bounded is None or response.status == 401:
            return httpx.Response(
                response.status, headers=raw, stream=stream, extensions=extensions
            )
        limit, what = bounded
        chunks = stream.__aiter__()
        try:
            body = await inflated(chunks, raw, limit, what)
        finally:
            await chunks.aclose()
            await stream.aclose()  # read to its end: back to the pool; else dropped
        return httpx.Response(
            response.status, headers=decoded_headers(raw), content=body, extensions=extensions
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class ReceivedCookies(httpx.Cookies):
    """A client's cookie jar that reads an answer's cookies only when it sets any.

    httpx hands every answer to urllib's cookie jar (through two adapter objects that parse
    the request's URL again): about a tenth of the connector's CPU per exchange (cProfile,
    bench/RESULTS.md §15) for SCIM apps, which seldom set a cookie. urllib's jar reads only
    these two headers, so an answer without them changes nothing in it."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class _Body(httpx.AsyncByteStream):
    """The answer's raw bytes as aiohttp reads them; the connection goes back to the pool once
    the body was read to its end, and is dropped otherwise (an answer refused as too large)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc, self._request) from exc

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


def _mapped(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    """aiohttp's error (or the socket's) as the httpx one the connector handles.

    Only what this side says is quoted (a timeout, the connect call's or the TLS library's
    error): aiohttp's parser errors quote the bytes the peer sent, and whatever listens at an
    app's URL (an SSH banner, an intranet page) must not be readable through the connector's
    messages (docs/security.md)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timeout", request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(str(exc) or "read timeout", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientSSLError):
        return httpx.ConnectError(str(exc) or type(exc).__name__, request=request)
    what = type(exc).__name__
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("the app closed the connection", request=request)
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(f"the answer is not valid HTTP ({what})", request=request)
    return httpx.ReadError(f"the connection failed ({what})", request=request)
