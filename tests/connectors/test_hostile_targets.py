"""A hostile app: an answer too large to hold, a gzip bomb, ids that step out of the resource.

Real peers on 127.0.0.1 (raw sockets in a thread, so the huge answers are made on the fly and
never held by the server); the connector is the one the worker builds.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisiond.config import DEFAULT_MAX_RESPONSE_BYTES
from provisiond.connectors.bodies import TooLarge
from provisiond.connectors.remote_ids import REMOTE_ID_MAX, remote_id_flaw, segment
from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import NoAuth, OAuth2ClientCredentials, ScimConnectorSettings
from provisiond.errors import TerminalError
from tests.connectors.conftest import LOOPBACK, LoopbackServer, RecordedRequest, Responder

T = TypeVar("T")
MB = 1024 * 1024
HUGE = 200 * MB
# Generous: the cap is 4 MiB and the reads are 64 KiB; before the fix a 200 MB answer took
# ~740 MB more and the bomb ~975 MB.
RSS_GROWTH_MAX = 64 * MB
SCIM_JSON = "application/scim+json"
TRAVERSAL = "../../../../trav-escape/pwned?x=1"


def run(base_url: str, scenario: Callable[[ScimConnector], Awaitable[T]]) -> T:
    async def main() -> T:
        connector = ScimConnector(
            ScimConnectorSettings(base_url=base_url, auth=NoAuth()), policy=LOOPBACK
        )
        try:
            async with asyncio.timeout(120):
                return await scenario(connector)
        finally:
            await connector.aclose()

    return asyncio.run(main())


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class PeakRss:
    """The process's peak resident size while the block runs, sampled every few ms (ru_maxrss
    is the whole run's high-water mark, which earlier tests may have set already)."""

    def __enter__(self) -> PeakRss:
        self.baseline = rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


class RawServer:
    """Answers every request on 127.0.0.1 with ``head`` and then the chunks ``body()`` yields
    (written as they come, so a 200 MB answer is never in memory); counts what it was asked."""

    def __init__(self, head: bytes, body: Callable[[], Iterator[bytes]]) -> None:
        self.head, self.body = head, body
        self.requests: list[str] = []
        self.finished = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v2"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            self.requests.append(request.split(b"\r\n", 1)[0].decode())
            try:
                conn.sendall(self.head)
                for chunk in self.body():
                    conn.sendall(chunk)
                self.finished += 1
            except OSError:
                pass  # the client hung up: what a capped read does

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[bytes, Callable[[], Iterator[bytes]]], RawServer]]:
    servers: list[RawServer] = []

    def start(head: bytes, body: Callable[[], Iterator[bytes]]) -> RawServer:
        servers.append(RawServer(head, body))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def huge_json() -> Iterator[bytes]:
    """A ListResponse 200 MB long: one user whose displayName never ends."""
    yield b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,'
    yield b'"Resources":[{"id":"1","userName":"x","displayName":"'
    chunk = b"a" * MB
    for _ in range(HUGE // MB):
        yield chunk
    yield b'"}]}'


def chunked(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
    yield b"0\r\n\r\n"


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """200 MB of JSON-ish zeros as ~200 KB of gzip, made in 1 MB steps."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [squeeze.compress(b'{"schemas":["x"],"pad":"')]
    zeros = b"0" * MB
    parts += [squeeze.compress(zeros) for _ in range(HUGE // MB)]
    parts.append(squeeze.compress(b'"}') + squeeze.flush())
    return b"".join(parts)


def head(*headers: str) -> bytes:
    lines = ["HTTP/1.1 200 OK", f"Content-Type: {SCIM_JSON}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def too_large(connector_call: Callable[[ScimConnector], Awaitable[Any]], url: str) -> str:
    with PeakRss() as memory, pytest.raises(TooLarge) as refused:
        run(url, connector_call)
    assert memory.growth < RSS_GROWTH_MAX, f"RSS grew {memory.growth / MB:.0f} MB"
    return str(refused.value.detail)


def test_a_200_mb_answer_is_refused_without_reading_it_whole(raw_server: Any) -> None:
    server = raw_server(head("Transfer-Encoding: chunked"), lambda: chunked(huge_json()))
    detail = too_large(lambda c: c.holds_no_users(), server.url)
    assert "GET /Users" in detail and "PROVISIOND_CONNECTOR_MAX_RESPONSE_BYTES" in detail
    assert f"{DEFAULT_MAX_RESPONSE_BYTES:,} bytes" in detail
    assert server.finished == 0  # the connection was dropped, not drained


def test_a_declared_200_mb_answer_is_refused_from_its_header(raw_server: Any) -> None:
    length = HUGE + 200
    server = raw_server(head(f"Content-Length: {length}"), huge_json)
    detail = too_large(lambda c: c.holds_no_users(), server.url)
    assert f"declares {length:,} bytes" in detail


def test_a_gzip_bomb_is_refused_counting_the_inflated_size(
    raw_server: Any, gzip_bomb: bytes
) -> None:
    assert len(gzip_bomb) < 400 * 1024  # the 204 KB kind of the finding
    server = raw_server(
        head("Content-Encoding: gzip", f"Content-Length: {len(gzip_bomb)}"),
        lambda: iter([gzip_bomb]),
    )
    detail = too_large(lambda c: c.holds_no_users(), server.url)
    assert "holds more than" in detail


def test_a_gzipped_answer_under_the_cap_is_read(raw_server: Any) -> None:
    listing = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "Resources": [],
    }
    squeezed = zlib.compress(json.dumps(listing).encode(), wbits=16 + zlib.MAX_WBITS)
    server = raw_server(
        head("Content-Encoding: gzip", f"Content-Length: {len(squeezed)}"),
        lambda: iter([squeezed]),
    )
    assert run(server.url, lambda c: c.holds_no_users()) is True


def test_an_answer_with_an_encoding_never_asked_for_is_refused(raw_server: Any) -> None:
    server = raw_server(head("Content-Encoding: br", "Content-Length: 4"), lambda: iter([b"abcd"]))
    with pytest.raises(TerminalError, match="content encoding 'br'"):
        run(server.url, lambda c: c.holds_no_users())


# -- remote ids are one path segment ---------------------------------------------------------


def created_with_id(remote_id: str) -> Responder:
    def answer(request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        if request.method == "POST":
            body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": remote_id,
                    "userName": "ann"}
            return 201, {"Content-Type": SCIM_JSON}, json.dumps(body).encode()
        if "ServiceProviderConfig" in request.path:
            return 404, {}, b""
        empty = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                 "totalResults": 0, "Resources": []}
        return 200, {"Content-Type": SCIM_JSON}, json.dumps(empty).encode()

    return answer


def test_a_created_account_with_a_traversal_id_fails_and_the_id_is_never_sent(
    serve: Callable[[Responder], LoopbackServer],
) -> None:
    server = serve(created_with_id(TRAVERSAL))

    async def create_then_update(connector: ScimConnector) -> None:
        created = await connector.create_user({"userName": "ann"})
        await connector.update_user(created.remote_id, [], {"userName": "ann"})

    with pytest.raises(TerminalError) as refused:
        run(server.url + "/v2", create_then_update)
    assert "POST /Users answered the id '../../../../trav-escape/pwned?x=1', refused" in str(
        refused.value.detail
    )
    assert [r.method for r in server.requests] == ["POST"]
    assert not any("trav-escape" in r.path for r in server.requests)


@pytest.mark.parametrize(
    ("remote_id", "flaw"),
    [
        (TRAVERSAL, "'..'"),
        ("..", "'..'"),
        (".", "'..'"),
        ("a/b", "'/'"),
        ("a\\b", "'\\\\'"),
        ("a?b=1", "'?'"),
        ("a#b", "'#'"),
        ("a\nb", "control characters"),
        ("a\x00b", "control characters"),
        ("", "empty"),
        ("x" * (REMOTE_ID_MAX + 1), f"longer than {REMOTE_ID_MAX}"),
    ],
)
def test_a_stored_unsafe_id_is_refused_before_anything_is_sent(
    serve: Callable[[Responder], LoopbackServer], remote_id: str, flaw: str
) -> None:
    server = serve(created_with_id("fine"))
    for call in (
        lambda c: c.get_user(remote_id),
        lambda c: c.delete_user(remote_id),
        lambda c: c.get_group(remote_id),
        lambda c: c.delete_group(remote_id),
    ):
        with pytest.raises(TerminalError, match="refused: it ") as refused:
            run(server.url + "/v2", call)
        assert flaw in str(refused.value.detail)
    assert server.requests == []


def test_an_odd_but_safe_id_is_sent_percent_encoded_as_one_segment(
    serve: Callable[[Responder], LoopbackServer],
) -> None:
    server = serve(lambda request: (204, {}, b""))
    run(server.url + "/v2", lambda c: c.delete_user("a b%2F;é"))
    assert [r.path for r in server.requests] == ["/v2/Users/a%20b%252F%3B%C3%A9"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_every_id_is_refused_or_becomes_exactly_one_segment(remote_id: str) -> None:
    if remote_id_flaw(remote_id) is not None:
        with pytest.raises(TerminalError):
            segment(remote_id)
        return
    sent = segment(remote_id)
    assert unquote(sent) == remote_id
    assert not set(sent) & set("/?#\\") and sent not in (".", "..")


def test_the_oauth_token_answer_is_capped_too(raw_server: Any) -> None:
    server = raw_server(head("Transfer-Encoding: chunked"), lambda: chunked(huge_json()))
    settings = ScimConnectorSettings(
        base_url=server.url,
        auth=OAuth2ClientCredentials(
            token_url=f"{server.url}/token",  # type: ignore[arg-type]
            client_id="c",
            client_secret="s",  # type: ignore[arg-type]
        ),
    )

    async def main() -> None:
        connector = ScimConnector(settings, policy=LOOPBACK)
        try:
            await connector.holds_no_users()
        finally:
            await connector.aclose()

    with PeakRss() as memory, pytest.raises(TooLarge, match="token endpoint"):
        asyncio.run(main())
    assert memory.growth < RSS_GROWTH_MAX
    assert server.requests == ["POST /v2/token HTTP/1.1"]  # nothing sent without a token
