"""Real peers on 127.0.0.1 for connector tests: the demo SCIM target, tiny misbehaving servers.

Nothing here is a mock: every test talks HTTP over a loopback socket. The demo target (stock
scim2-server behind uvicorn) runs as a subprocess per module; the small servers are stdlib
``http.server`` instances in a thread, each answering with whatever function the test gives it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO

import httpx
import pytest

from provisiond.connectors.destinations import DestinationPolicy
from provisiond.domain.apps import BearerAuth, ScimConnectorSettings
from tests.support.drip import drip_targets  # noqa: F401  (a fixture: a target that drips)

TARGET_TOKEN = "demo-target-token"
STARTUP_SECONDS = 120.0  # a busy CI machine has needed over 20
# Every peer here listens on 127.0.0.1, which the destination policy refuses unless allowed.
LOOPBACK = DestinationPolicy(allow_loopback=True)


def free_port() -> int:
    """A loopback port nothing listens on (the kernel's pick for port 0, released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the demo target: the stock scim2-server over uvicorn, in a subprocess ----------------------


def _serve_demo_target(*extra: str) -> Iterator[str]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v2"
    command = [
        sys.executable,
        "-m",
        "provisiond.demo.target",
        "--port",
        str(port),
        "--bearer-token",
        TARGET_TOKEN,
        *extra,
    ]
    with (
        tempfile.TemporaryFile() as log,
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT) as process,
    ):
        try:
            _wait_until_answering(process, base_url, log)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_answering(process: subprocess.Popen[bytes], base_url: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    headers = {"Authorization": f"Bearer {TARGET_TOKEN}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            response = httpx.get(f"{base_url}/ServiceProviderConfig", headers=headers, timeout=1)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if response.status_code == 200:
            return
        time.sleep(0.05)
    log.seek(0)
    output = log.read()
    pytest.fail(
        f"the demo target at {base_url} did not answer within {STARTUP_SECONDS:g} s "
        f"(exit code {process.poll()}): {output.decode(errors='replace')[-2000:]}"
    )


@pytest.fixture(scope="module")
def scim_target() -> Iterator[str]:
    """Base URL of a real SCIM 2.0 service announcing PATCH and filter support."""
    yield from _serve_demo_target()


@pytest.fixture(scope="module")
def no_patch_target() -> Iterator[str]:
    """Base URL of the same service, its ServiceProviderConfig saying PATCH is unsupported."""
    yield from _serve_demo_target("--no-patch")


@pytest.fixture
def scim_settings(scim_target: str) -> ScimConnectorSettings:
    return ScimConnectorSettings(base_url=scim_target, auth=BearerAuth(token=TARGET_TOKEN))


@pytest.fixture
def no_patch_settings(no_patch_target: str) -> ScimConnectorSettings:
    return ScimConnectorSettings(base_url=no_patch_target, auth=BearerAuth(token=TARGET_TOKEN))


# -- tiny real HTTP servers that answer however the test says ------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string, as sent
    headers: dict[str, str]  # names lower-cased
    body: bytes


# A responder maps the request to (status, headers, body); it runs in the server's thread.
Reply = tuple[int, dict[str, str], bytes]
Responder = Callable[[RecordedRequest], Reply]


class _Handler(BaseHTTPRequestHandler):
    server: _LoopbackHTTPServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        with self.server.lock:
            self.server.requests.append(request)
        status, headers, body = self.server.responder(request)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean


class _LoopbackHTTPServer(ThreadingHTTPServer):
    def __init__(self, responder: Responder) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder = responder
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()


class LoopbackServer:
    """A started HTTP/1.0 server on 127.0.0.1; ``requests`` is what it received, in order."""

    def __init__(self, responder: Responder) -> None:
        self._httpd = _LoopbackHTTPServer(responder)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._httpd.lock:
            return list(self._httpd.requests)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads
        self._thread.join()


@pytest.fixture
def serve() -> Iterator[Callable[[Responder], LoopbackServer]]:
    """``serve(responder)`` starts a real loopback server; it is stopped after the test."""
    servers: list[LoopbackServer] = []

    def start(responder: Responder) -> LoopbackServer:
        server = LoopbackServer(responder)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A peer that accepts TCP connections (the kernel's backlog) and never answers a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def unreachable_url() -> str:
    """A loopback port with nothing listening: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"
