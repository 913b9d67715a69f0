"""Which network addresses a connector may connect to: the connector destination policy.

An app's base URL (and its OAuth token URL) is chosen by an app admin, and the name in it is
resolved by whoever runs its DNS. Left alone, provisiond would carry its bearer tokens to any
address that name points at: the cloud metadata service, a link-local peer, a port on
provisiond's own host. So the policy is checked where the socket is opened, on every address the
name resolves to, at connect time (a name that resolved to a public address when the app was
saved and to 169.254.169.254 now is refused too: DNS rebinding), for every request a connector
sends, not only the connection test.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpcore
import httpx

from provisiond.errors import TerminalError, TransientError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata services hand out cloud credentials to whoever asks from the host; the
# best-known SSRF prize. Link-local ones are covered by LINK_LOCAL too, named here for the reason.
METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),  # AWS, GCP, Azure, OpenStack, DigitalOcean, OCI
    ipaddress.ip_network("169.254.170.2/32"),  # AWS ECS task credentials
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
    ipaddress.ip_network("192.0.0.192/32"),  # Oracle Cloud (legacy)
    ipaddress.ip_network("168.63.129.16/32"),  # Azure WireServer
)
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
# 0.0.0.0 and :: reach the host's own listeners on Linux: they count as loopback.
LOOPBACK = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("0.0.0.0/32"),
    ipaddress.ip_network("::/128"),
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291), still parsed

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class DestinationRefused(TerminalError):
    """The app's address is one the policy refuses: retrying cannot help until it changes."""


def canonical(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), else itself: a
    metadata address written ``::ffff:169.254.169.254`` is still the metadata address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class DestinationPolicy:
    """Denied networks always win. An address in an allowed network passes (even a built-in
    denial gives way to a network the operator names), and so does loopback with
    ``allow_loopback``. Beyond that, a set ``allowed`` is an allow-list; without one, every
    address passes but metadata, link-local and loopback ones."""

    allow_loopback: bool = False
    allowed: tuple[IPNetwork, ...] = ()
    denied: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(
        cls, *, allow_loopback: bool, allowed: Iterable[str] = (), denied: Iterable[str] = ()
    ) -> DestinationPolicy:
        return cls(
            allow_loopback=allow_loopback,
            allowed=tuple(ipaddress.ip_network(n, strict=False) for n in allowed),
            denied=tuple(ipaddress.ip_network(n, strict=False) for n in denied),
        )

    def refusal(self, address: str) -> str | None:
        """Why a connection to ``address`` (an IP literal) is refused, or None if it may go."""
        ip = canonical(ipaddress.ip_address(address.split("%", 1)[0]))  # no IPv6 zone index
        if _within(ip, self.denied):
            return "it is in PROVISIOND_CONNECTOR_DENIED_NETWORKS"
        if _within(ip, self.allowed):
            return None  # named explicitly by the operator
        if self.allow_loopback and _within(ip, LOOPBACK):
            return None
        if self.allowed:
            return "it is not in PROVISIOND_CONNECTOR_ALLOWED_NETWORKS"
        if _within(ip, METADATA):
            return "it is a cloud metadata address"
        if _within(ip, LINK_LOCAL):
            return "it is a link-local address"
        if _within(ip, LOOPBACK) and not self.allow_loopback:
            return "it is a loopback address (PROVISIOND_CONNECTOR_ALLOW_LOOPBACK is off)"
        return None


def _within(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refuse(policy: DestinationPolicy, host: str, addresses: Iterable[str]) -> None:
    """Raise DestinationRefused if any of the addresses ``host`` resolved to is refused: a
    rebinding name may hand out a public address first and the metadata one on the next try."""
    for address in addresses:
        why = policy.refusal(address)
        if why is not None:
            shown = address if address == host else f"{host} ({address})"
            raise DestinationRefused(
                f"refused to connect to {shown}: {why} "
                "(the connector destination policy, docs/security.md)"
            )


async def checked_addresses(
    policy: DestinationPolicy,
    resolve: Resolver,
    host: str,
    port: int,
    unreachable: Callable[[str], Exception],
) -> Sequence[str]:
    """The addresses ``host`` resolves to, every one allowed by the policy (else
    DestinationRefused); a name that does not resolve raises ``unreachable(why)``."""
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise unreachable(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise unreachable(f"{host} resolves to no address")
    refuse(policy, host, addresses)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving names itself and connecting only to addresses the
    policy allows. The connection is opened to the checked address (never resolved twice), while
    TLS still verifies the certificate against the URL's host name (httpcore passes it as SNI)."""

    def __init__(self, policy: DestinationPolicy, resolve: Resolver = system_resolver) -> None:
        self.policy = policy
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(
            self.policy, self._resolve, host, port, httpcore.ConnectError
        )
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TerminalError("connectors do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every connector: loading the CA bundle takes a noticeable
    part of a second, and a context is safe to share between connections."""
    return httpx.create_ssl_context()


def guarded_transport(
    policy: DestinationPolicy, limits: httpx.Limits, resolve: Resolver = system_resolver
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (its error mapping, TLS verification) over a GuardedBackend.
    httpx takes no network backend, so its connection pool is replaced by an equal one that
    has it. Proxies from the environment are not used (``trust_env`` off in the connector):
    through a proxy, the address connected to would be the proxy's, not the app's."""
    transport = httpx.AsyncHTTPTransport(verify=tls_context(), limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(policy, resolve),
    )
    return transport


async def checked_address(
    policy: DestinationPolicy, host: str, port: int, resolve: Resolver = system_resolver
) -> str:
    """The address to connect to for ``host``, every address it resolves to checked (as
    GuardedBackend does for HTTP), for connectors that open their own sockets (LDAP,
    PostgreSQL). Connecting to the returned address, never resolving twice, is the caller's part."""
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise TransientError(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise TransientError(f"{host} resolves to no address")
    for address in addresses:
        why = policy.refusal(address)
        if why is not None:
            shown = address if address == host else f"{host} ({address})"
            raise DestinationRefused(
                f"refused to connect to {shown}: {why} "
                "(the connector destination policy, docs/security.md)"
            )
    return addresses[0]
