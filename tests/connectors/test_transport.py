"""The connector's aiohttp transport: TLS verified against the URL's host, failures mapped."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import NoAuth, OAuth2ClientCredentials, ScimConnectorSettings
from provisiond.errors import TerminalError, TransientError
from tests.connectors.conftest import LOOPBACK, free_port


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Never(BaseHTTPRequestHandler):
    reached: list[str] = []  # what got past the handshake: nothing should

    def do_GET(self) -> None:
        self.reached.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def untrusted_tls(tmp_path: Path) -> Iterator[str]:
    """A real HTTPS server on 127.0.0.1 with a certificate nobody trusts."""
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Never)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/v2"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _holds_no_users(base_url: str) -> None:
    connector = ScimConnector(ScimConnectorSettings(base_url=base_url, auth=NoAuth()),
                              policy=LOOPBACK)

    async def main() -> None:
        try:
            await connector.holds_no_users()
        finally:
            await connector.aclose()

    asyncio.run(main())


def test_a_certificate_nobody_trusts_is_a_terminal_tls_failure(
    untrusted_tls: str,
) -> None:
    with pytest.raises(TerminalError, match=r"TLS handshake with .* failed"):
        _holds_no_users(untrusted_tls)
    assert _Never.reached == []


def test_a_closed_port_is_a_transient_failure() -> None:
    with pytest.raises(TransientError, match="cannot reach"):
        _holds_no_users(f"http://127.0.0.1:{free_port()}/v2")


class _Cookies(BaseHTTPRequestHandler):
    """Sets a cookie on its first answer only, and records the Cookie header of each request."""

    seen: list[str | None] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Cookie"))
        body = b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], ' \
            b'"totalResults": 0, "Resources": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Node", "caf\xe9")  # not ASCII: latin-1, as HTTP/1.1 allows
        if len(type(self).seen) == 1:
            self.send_header("Set-Cookie", "affinity=node-2; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_cookie_the_app_sets_is_sent_back_and_answers_without_one_keep_it() -> None:
    """The jar reads only answers that set a cookie (transport.ReceivedCookies): a cookie set
    once (a load balancer's affinity, say) is still sent with every later request."""
    _Cookies.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Cookies)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    connector = ScimConnector(
        ScimConnectorSettings(base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v2",
                              auth=NoAuth()),
        policy=LOOPBACK,
    )

    async def main() -> list[bool]:
        try:
            return [await connector.holds_no_users() for _ in range(3)]
        finally:
            await connector.aclose()

    try:
        assert asyncio.run(main()) == [True, True, True]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert _Cookies.seen == [None, "affinity=node-2", "affinity=node-2"]


class _StaleToken(BaseHTTPRequestHandler):
    """An OAuth 2.0 token endpoint (``/token``) and a SCIM app that answers the first token
    with a 401 whose body no client can read (an encoding never asked for)."""

    issued = 0
    seen: list[str | None] = []

    def do_POST(self) -> None:
        type(self).issued += 1
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(200, b'{"access_token": "t%d", "token_type": "bearer", "expires_in": 3600}'
                   % type(self).issued, "application/json")

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") == "Bearer t1":
            self._send(401, b"\x8b\x00garbage", "text/html", encoding="br")
            return
        self._send(200, b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], '
                   b'"totalResults": 0, "Resources": []}', "application/scim+json")

    def _send(self, status: int, body: bytes, kind: str, encoding: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _OddReason(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.wfile.write("HTTP/1.1 503 \u4e2d\u6587\r\nContent-Length: 0\r\n\r\n".encode())

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_a_401_that_cannot_be_read_still_gets_a_new_token_and_the_request_again() -> None:
    _StaleToken.issued, _StaleToken.seen = 0, []
    with _serving(_StaleToken) as port:
        connector = ScimConnector(
            ScimConnectorSettings(
                base_url=f"http://127.0.0.1:{port}/v2",
                auth=OAuth2ClientCredentials(token_url=f"http://127.0.0.1:{port}/token",
                                             client_id="c", client_secret="s"),
            ),
            policy=LOOPBACK,
        )

        async def main() -> bool:
            try:
                return await connector.holds_no_users()
            finally:
                await connector.aclose()

        assert asyncio.run(main()) is True
    assert _StaleToken.seen == ["Bearer t1", "Bearer t2"]


def test_a_reason_phrase_that_is_not_latin_1_is_an_ordinary_failure() -> None:
    with _serving(_OddReason) as port, pytest.raises(TransientError):
        _holds_no_users(f"http://127.0.0.1:{port}/v2")
