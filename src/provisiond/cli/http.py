"""The CLI's HTTP transport, on the standard library's ``http.client``.

httpx costs the CLI more than a tenth of a second of CPU to import (with its own command line,
Rich and Click's pieces), a third of an admin command's start; a command makes a handful of
plain requests to one server, which ``http.client`` does as well. One connection is kept per
command and opened again once if the server closed it between two requests (keep-alive ended).
HTTPS is verified with the system's CA store, loaded (the costly part) only for an https server. Proxy variables
(``HTTPS_PROXY``...) are not read: the CLI talks to the server it is pointed at.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

CHUNK = 1 << 16


class TransportError(Exception):
    """The request did not get an answer: a bad URL, a broken connection, a protocol error."""


class ConnectError(TransportError):
    """Nothing answers at the server's address."""


class Timeout(TransportError):
    """The server did not answer in time."""


class ResponseLike(Protocol):
    """What the client reads of an answer (``ApiError.of`` takes an httpx one as well)."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


class Response:
    def __init__(self, raw: http.client.HTTPResponse) -> None:
        self._raw = raw
        self.status_code = raw.status
        self.reason_phrase = raw.reason
        self.headers = {key.lower(): value for key, value in raw.getheaders()}
        self._content: bytes | None = None

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    def read(self) -> bytes:
        if self._content is None:
            self._content = self._raw.read()
        return self._content

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.read())

    def iter_bytes(self) -> Iterator[bytes]:
        try:
            while block := self._raw.read(CHUNK):
                yield block
        except TimeoutError:
            raise Timeout() from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(f"the answer was cut off: {exc}") from None


class Transport:
    def __init__(self, base_url: str, headers: dict[str, str], *, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http:// or https:// URL: {base_url!r}")
        self.base_url = base_url.rstrip("/") + "/"
        self._prefix = parts.path.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._headers = headers
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                import ssl

                context = ssl.create_default_context()
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=context
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[Response]:
        """One request; the answer's body is read from the ``Response`` while inside."""
        target = self._prefix + "/" + url.lstrip("/")
        if params:
            target += "?" + urlencode(
                {k: [_text(i) for i in v] if isinstance(v, list | tuple) else _text(v)
                 for k, v in params.items()},
                doseq=True,
            )
        sent = {**self._headers, **(headers or {})}
        body: bytes | Iterator[bytes] | None = content
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        if isinstance(body, bytes):
            sent["Content-Length"] = str(len(body))
        elif body is not None and "Content-Length" not in sent:
            sent["Transfer-Encoding"] = "chunked"
        response = self._send(method, target, body, sent)
        try:
            yield Response(response)
        finally:
            response.close()

    def _send(
        self, method: str, target: str, body: bytes | Iterator[bytes] | None, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        # A kept-alive connection the server closed meanwhile is opened again, once; a body
        # being streamed cannot be sent twice, so only a request whose body is bytes is retried.
        for attempt in (1, 2):
            reused = self._connection is not None
            connection = self._connect()
            try:
                connection.request(
                    method, target, body=body, headers=headers,
                    encode_chunked="Transfer-Encoding" in headers,
                )
                return connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused and attempt == 1 and not isinstance(body, Iterator):
                    continue
                raise TransportError(f"the connection was closed: {exc}") from None
            except TimeoutError:
                self.close()
                raise Timeout() from None
            except (ConnectionRefusedError, socket.gaierror) as exc:
                self.close()
                raise ConnectError(str(exc)) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise TransportError(str(exc) or type(exc).__name__) from None
        raise AssertionError("unreachable")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
