"""A real SCIM target that answers on purpose too slowly: headers at once, then a drip.

Every answer starts like a healthy one (a status line, ``Content-Type: application/scim+json``,
the full ``Content-Length``), then the body comes ``chunk_size`` bytes every ``delay`` seconds.
The bodies are valid SCIM JSON, padded with trailing whitespace (still valid JSON) to at least
``min_body_bytes``, so one answer takes ``min_body_bytes / chunk_size * delay`` seconds: at the
defaults (4 KiB, 1 byte, 1 s) over an hour. A client's per-read timeout never notices, since a
byte arrives every ``delay`` seconds; only a deadline on the whole request cuts it.

It is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (an ephemeral port) in a thread of the test
process, like the small servers of ``tests/connectors/conftest.py``: every request is real HTTP
over a loopback socket. It notices a client that hangs up mid-answer (``disconnects``) and stops
dripping to it, and it stops promptly when closed, whatever is still dripping.

Use it as a context manager::

    with dripping_target(delay=0.2) as target:
        settings = ScimConnectorSettings(base_url=target.base_url, request_deadline_seconds=2)
        ...  # the connector's request is cut after 2 s
        target.wait_until(lambda t: t.disconnects >= 1)  # the connector hung up

or, in tests, through the ``drip_targets`` fixture (a factory; import it into a conftest)::

    def test_x(drip_targets: StartDrip) -> None:
        target = drip_targets(delay=0.5)

To point an app at it over the API (a worker fairness test: one app's target drips, another's
is healthy), give the app ``"connector": {"type": "scim2", "base_url": target.base_url, "auth":
{"type": "bearer", "token": "anything"}}``: any credentials are accepted. Enabling provisioning
runs a connection test first, so enable the app while the target is healthy (``delay=0``, or
``drips`` saying which requests drip), then set ``target.delay`` to make it drip from then on.

What it answers (a stateless stand-in for a SCIM 2.0 service; ``responder`` replaces it):
``GET …/ServiceProviderConfig`` (PATCH and filter supported), ``GET …/Users`` and ``…/Groups``
(an empty ListResponse), ``GET …/Users/{id}`` (a user with that id), ``POST …/Users`` (201, the
user with a new id), ``PATCH``/``PUT`` (200, the resource), ``DELETE`` (200 with an empty
object, so that it has a body to drip), ``POST …/token`` (an OAuth 2.0 access token, plain JSON),
anything else a SCIM 404 error.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest

SCIM_JSON = "application/scim+json"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
# The longest a dripping handler waits between two looks at its socket and the stop flag.
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class DripRequest:
    method: str
    path: str  # with the query string, as sent
    headers: dict[str, str]  # names lower-cased
    body: bytes


# A responder maps a request to (status, headers, body); it runs in the server's thread.
Reply = tuple[int, dict[str, str], bytes]
Responder = Callable[[DripRequest], Reply]


def scim_answer(request: DripRequest) -> Reply:
    """The default answers: a stateless stand-in for a SCIM 2.0 service (see the module)."""
    path = request.path.split("?", 1)[0].rstrip("/")
    last = path.rsplit("/", 1)[-1]
    parent = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
    if request.method == "POST" and last == "token":
        token = {"access_token": "drip-token", "token_type": "Bearer", "expires_in": 3600}
        return 200, {"Content-Type": "application/json"}, json.dumps(token).encode()
    if request.method == "GET" and last == "ServiceProviderConfig":
        return _scim(200, _service_provider_config())
    if request.method == "GET" and last in ("Users", "Groups"):
        return _scim(
            200,
            {
                "schemas": [LIST],
                "totalResults": 0,
                "itemsPerPage": 0,
                "startIndex": 1,
                "Resources": [],
            },
        )
    if request.method == "POST" and last in ("Users", "Groups"):
        return _scim(201, _resource(last, uuid.uuid4().hex, _json(request.body)))
    if parent in ("Users", "Groups"):
        if request.method == "DELETE":
            return _scim(200, {})
        if request.method in ("GET", "PUT", "PATCH"):
            given = _json(request.body) if request.method == "PUT" else {}
            return _scim(200, _resource(parent, last, given))
    return _scim(404, {"schemas": [ERROR], "status": "404", "detail": f"no {path} here"})


class DripTarget:
    """A started dripping SCIM target; ``close()`` it (or use it as a context manager).

    ``delay`` (seconds between chunks) may be changed while it runs: answers already dripping
    keep the delay they started with. ``drips(request)`` says which requests drip (all, if
    not given); the others are answered at once, whole.
    """

    def __init__(
        self,
        *,
        delay: float = 1.0,
        chunk_size: int = 1,
        min_body_bytes: int = 4096,
        drips: Callable[[DripRequest], bool] | None = None,
        responder: Responder = scim_answer,
    ) -> None:
        if delay < 0 or chunk_size < 1 or min_body_bytes < 0:
            raise ValueError("delay >= 0, chunk_size >= 1 and min_body_bytes >= 0, please")
        self.chunk_size = chunk_size
        self.min_body_bytes = min_body_bytes
        self.drips = drips
        self.responder = responder
        self._delay = delay
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._requests: list[DripRequest] = []
        self._started = self._finished = self._disconnects = self._bytes_sent = 0
        self._httpd = _DripHTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(_POLL_SECONDS,), daemon=True
        )
        self._thread.start()

    # -- where it is --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The SCIM root to give an app's connector: ``<url>/scim/v2``."""
        return f"{self.url}/scim/v2"

    @property
    def token_url(self) -> str:
        """An OAuth 2.0 token endpoint on the same server (its answer drips too)."""
        return f"{self.url}/oauth/token"

    # -- how slow it is -----------------------------------------------------------------------

    @property
    def delay(self) -> float:
        with self._changed:
            return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the delay cannot be negative")
        with self._changed:
            self._delay = seconds

    # -- what happened (each read is a consistent snapshot) -----------------------------------

    @property
    def requests(self) -> list[DripRequest]:
        """Every request received, in order."""
        with self._changed:
            return list(self._requests)

    @property
    def answers_started(self) -> int:
        """Answers whose headers were sent."""
        with self._changed:
            return self._started

    @property
    def answers_finished(self) -> int:
        """Answers sent to their last byte (noted just after it, so a client can hold the whole
        answer a moment before this counts it: ``wait_until`` it rather than read it once)."""
        with self._changed:
            return self._finished

    @property
    def in_flight(self) -> int:
        """Answers started and neither finished nor hung up on (what the targets' clients hold)."""
        with self._changed:
            return self._started - self._finished - self._disconnects

    @property
    def disconnects(self) -> int:
        """Answers the client hung up on before their last byte."""
        with self._changed:
            return self._disconnects

    @property
    def bytes_sent(self) -> int:
        """Body bytes sent, over all answers."""
        with self._changed:
            return self._bytes_sent

    def wait_until(self, condition: Callable[[DripTarget], bool], timeout: float = 30.0) -> None:
        """Block until ``condition(self)`` holds (checked on every change), else fail the test."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the drip target did not reach the condition within {timeout:g} s "
                        f"({self._summary()})"
                    )
                self._changed.wait(left)

    # -- stopping -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving; answers still dripping end within about 50 ms."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads
        self._thread.join()

    def __enter__(self) -> DripTarget:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- for the handler ----------------------------------------------------------------------

    def _note(self, **counts: Any) -> None:
        with self._changed:
            if "request" in counts:
                self._requests.append(counts["request"])
            self._started += counts.get("started", 0)
            self._finished += counts.get("finished", 0)
            self._disconnects += counts.get("disconnects", 0)
            self._bytes_sent += counts.get("sent", 0)
            self._changed.notify_all()

    def _summary(self) -> str:
        return (
            f"{len(self._requests)} requests, {self._started} answers started, "
            f"{self._finished} finished, {self._disconnects} hung up on, "
            f"{self._bytes_sent} body bytes sent"
        )


@contextmanager
def dripping_target(
    *,
    delay: float = 1.0,
    chunk_size: int = 1,
    min_body_bytes: int = 4096,
    drips: Callable[[DripRequest], bool] | None = None,
    responder: Responder = scim_answer,
) -> Iterator[DripTarget]:
    """A started :class:`DripTarget`, closed on exit."""
    target = DripTarget(
        delay=delay,
        chunk_size=chunk_size,
        min_body_bytes=min_body_bytes,
        drips=drips,
        responder=responder,
    )
    try:
        yield target
    finally:
        target.close()


StartDrip = Callable[..., DripTarget]


@pytest.fixture
def drip_targets() -> Iterator[StartDrip]:
    """``drip_targets(delay=…, …)`` starts a :class:`DripTarget`; all are closed after the test."""
    started: list[DripTarget] = []

    def start(**options: Any) -> DripTarget:
        target = DripTarget(**options)
        started.append(target)
        return target

    yield start
    for target in started:
        target.close()


# -- the server ---------------------------------------------------------------------------------


class _DripHTTPServer(ThreadingHTTPServer):
    def __init__(self, target: DripTarget) -> None:
        super().__init__(("127.0.0.1", 0), _DripHandler)
        self.target = target

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that hangs up mid-request is what this server is for
        super().handle_error(request, client_address)  # a responder's bug: show it


class _DripHandler(BaseHTTPRequestHandler):
    server: _DripHTTPServer
    protocol_version = "HTTP/1.0"  # one request per connection: nothing idles at close

    def _answer(self) -> None:
        target = self.server.target
        length = int(self.headers.get("Content-Length") or 0)
        request = DripRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        target._note(request=request)
        status, headers, body = target.responder(request)
        delay = target.delay if target.drips is None or target.drips(request) else 0.0
        if delay and len(body) < target.min_body_bytes:
            body += b" " * (target.min_body_bytes - len(body))  # whitespace: still valid JSON
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        try:
            self.end_headers()  # flushed: the client has a valid head now
        except OSError:
            target._note(started=1, disconnects=1)
            return
        target._note(started=1)
        step = target.chunk_size if delay else max(1, len(body))
        for start in range(0, len(body), step):
            if delay and not self._pause(delay):
                return
            try:
                self.wfile.write(body[start : start + step])
            except OSError:  # EPIPE, ECONNRESET: the client hung up
                target._note(disconnects=1)
                return
            target._note(sent=len(body[start : start + step]))
        target._note(finished=1)

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False when the client hung up (noted) or the server is closing."""
        target = self.server.target
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            if target._stopping.is_set():
                return False
            readable, _, _ = select.select([self.connection], [], [], min(left, _POLL_SECONDS))
            if readable and self._hung_up():
                target._note(disconnects=1)
                return False
        return not target._stopping.is_set()

    def _hung_up(self) -> bool:
        # The client has sent its whole request: a readable socket now means EOF or a reset.
        try:
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True
        return peeked == b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean


def _scim(status: int, body: dict[str, Any]) -> Reply:
    return status, {"Content-Type": SCIM_JSON}, json.dumps(body).encode()


def _json(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _resource(kind: str, remote_id: str, given: dict[str, Any]) -> dict[str, Any]:
    if kind == "Groups":
        return {
            "schemas": [CORE_GROUP],
            "members": [],
            **given,
            "id": remote_id,
            "displayName": given.get("displayName", f"group-{remote_id[:8]}"),
        }
    return {
        "schemas": [CORE_USER],
        "active": True,
        **given,
        "id": remote_id,
        "userName": given.get("userName", f"user-{remote_id[:8]}"),
    }


def _service_provider_config() -> dict[str, Any]:
    return {
        "schemas": [SPC],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": 100},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [],
    }
