"""A pool of bound ldap3 connections to one directory, for the LDAP connector and imports.

ldap3 is synchronous: each operation runs in a worker thread on a connection of its own, at
most ``concurrency`` at once, connections kept bound for the next operation. The address
connected to is checked by the connector destination policy; TLS (LDAPS or StartTLS) verifies
the certificate for the URL's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as ldap_errors

from provisiond.connectors.base import ConnectionStep
from provisiond.connectors.destinations import (
    DestinationPolicy,
    DestinationRefused,
    Resolver,
    checked_address,
    system_resolver,
)
from provisiond.domain.connector_kinds import LdapConnection
from provisiond.errors import (
    ConnectorError,
    RemoteConflict,
    RemoteNotFound,
    TerminalError,
    TransientError,
)

T = TypeVar("T")


class LdapLink:
    def __init__(
        self,
        settings: LdapConnection,
        *,
        concurrency: int = 4,
        policy: DestinationPolicy | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        self._s = settings
        self._policy = policy or DestinationPolicy()
        self._resolve = resolve
        self._slots = asyncio.Semaphore(concurrency)
        self._idle: list[ldap3.Connection] = []
        parts = urlsplit(settings.url)
        self._host = parts.hostname or ""
        self._tls = parts.scheme == "ldaps"
        self._port = parts.port or (636 if self._tls else 389)

    def __str__(self) -> str:
        security = "LDAPS" if self._tls else "StartTLS" if self._s.start_tls else "no TLS"
        return f"{self._host}:{self._port} ({security})"

    async def run(self, work: Callable[[ldap3.Connection], T]) -> T:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._open()
            try:
                result = await asyncio.to_thread(work, conn)
            except ConnectorError:
                self._idle.append(conn)
                raise
            except ldap_errors.LDAPException as exc:
                _discard(conn)
                raise TransientError(f"LDAP: {exc}") from exc
            except BaseException:
                _discard(conn)
                raise
            self._idle.append(conn)
            return result

    async def _open(self) -> ldap3.Connection:
        address = await checked_address(self._policy, self._host, self._port, self._resolve)
        return await asyncio.to_thread(self._bind, address)

    def _bind(self, address: str) -> ldap3.Connection:
        s = self._s
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED if s.tls_verify else ssl.CERT_NONE,
            ca_certs_file=s.ca_file,
            valid_names=[self._host],  # the certificate is for the URL's host, not the address
            sni=self._host,
        )
        server = ldap3.Server(
            address,
            port=self._port,
            use_ssl=self._tls,
            tls=tls,
            connect_timeout=s.timeout_seconds,
            get_info=ldap3.NONE,
        )
        conn = ldap3.Connection(
            server,
            user=s.bind_dn,
            password=s.bind_password.get_secret_value(),
            receive_timeout=max(1, round(s.timeout_seconds)),  # ldap3 packs it as an int
            raise_exceptions=False,
        )
        where = f"{self._host}:{self._port}"
        try:
            try:
                conn.open()
                if s.start_tls and not conn.start_tls():
                    raise TerminalError(f"StartTLS refused by {where}: {said(conn)}")
            except BaseException:
                _discard(conn)  # ldap3 leaves the socket of a failed connect open
                raise
        except ldap_errors.LDAPStartTLSError as exc:
            raise TerminalError(f"StartTLS with {where} failed: {exc}") from exc
        except ldap_errors.LDAPSocketOpenError as exc:
            if "certificate" in str(exc).lower() or "ssl" in str(exc).lower():
                raise TerminalError(f"TLS with {where} failed: {exc}") from exc
            raise TransientError(f"cannot connect to {where}: {exc}") from exc
        except ldap_errors.LDAPException as exc:
            raise TransientError(f"cannot connect to {where}: {exc}") from exc
        if not conn.bind():
            description = conn.result.get("description")
            _discard(conn)
            raise TerminalError(f"bind as {s.bind_dn} failed: {description}")
        return conn

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await asyncio.to_thread(_discard, conn)


def _discard(conn: ldap3.Connection) -> None:
    """Unbind and close, whatever state the connection is in."""
    with contextlib.suppress(ldap_errors.LDAPException, OSError):
        conn.unbind()
    sock = getattr(conn, "socket", None)
    if sock is not None:
        sock.close()


# -- operations shared by the connector and imports --------------------------------------------


def search(
    conn: ldap3.Connection, base: str, query: str, attributes: list[str], scope: Any = ldap3.SUBTREE
) -> list[dict[str, Any]]:
    ok = conn.search(base, query, search_scope=scope, attributes=attributes)
    if not ok and conn.result.get("result") not in (0, 32):  # 32: noSuchObject, nothing found
        check(conn, ok, f"search {base}")
    return [
        {"dn": entry["dn"], "attributes": dict(entry["attributes"])}
        for entry in conn.response or []
        if entry.get("type") == "searchResEntry"
    ]


# LDAP result codes (RFC 4511 §4.1.9) another attempt may get past: busy, unavailable,
# unwillingToPerform is not one; timeLimitExceeded, adminLimitExceeded, other (loop/timeouts).
_TRANSIENT_RESULTS = {3, 11, 51, 52, 80}


def check(conn: ldap3.Connection, ok: bool, what: str) -> None:
    if ok:
        return
    code = conn.result.get("result")
    text = f"LDAP {what}: {said(conn)}"
    if code == 68:  # entryAlreadyExists
        raise RemoteConflict(text)
    if code == 32:  # noSuchObject
        raise RemoteNotFound(text)
    if code in _TRANSIENT_RESULTS or code is None:
        raise TransientError(text)
    raise TerminalError(text)


def said(conn: ldap3.Connection) -> str:
    result = conn.result or {}
    message = result.get("message")
    description = result.get("description") or "failed"
    return f"{description} ({message})" if message else str(description)


def first_value(attributes: Mapping[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def failed_step(name: str, exc: ConnectorError) -> ConnectionStep:
    if isinstance(exc, DestinationRefused):
        summary = "refused by the connector destination policy"
    elif "bind as" in exc.detail:
        summary = "the directory rejected the bind credentials"
    elif "TLS" in exc.detail:
        summary = "TLS with the directory failed"
    else:
        summary = "no LDAP answer: the directory is unreachable (a super admin sees the details)"
    return ConnectionStep(name, False, exc.detail, summary)
