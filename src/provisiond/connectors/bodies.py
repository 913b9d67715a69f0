"""Reading an app's answer with a cap on its size, counted after decompression.

httpx reads a whole body into memory and inflates gzip without a bound (one 64 KiB read of a
gzip bomb is ~64 MB), so a hostile target could take the process's memory with one answer
(measured before this: a 200 MB body took the API from 183 MB to a 922 MB peak, a 204 KB gzip
bomb to 1,158 MB). Here the raw bytes are read as a stream and inflated in bounded steps, and
the answer is refused the moment it passes the cap.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Sequence

import httpx

from provisiond.errors import TerminalError

# What the connector asks for: nothing it cannot inflate in bounded steps (no br, no zstd).
ACCEPT_ENCODING = "gzip, deflate"
_STEP = 64 * 1024  # the most one inflate step may produce
_DROPPED_HEADERS = {b"content-encoding", b"content-length", b"transfer-encoding"}


class TooLarge(TerminalError):
    """The answer is larger than the cap allows: never retried, the next answer would be too."""


class _Inflater:
    def __init__(self, encoding: str) -> None:
        # gzip (wbits 16+), or deflate: zlib-wrapped as RFC 9110 says, raw as some servers send.
        self._raw_fallback = encoding == "deflate"
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 0))
        self._started = False

    def feed(self, data: bytes, room: int) -> bytes:
        """Inflate ``data``, producing at most ``room + 1`` bytes (enough to know it is over)."""
        out = bytearray()
        pending = data
        while True:
            try:
                chunk = self._inflate.decompress(pending, min(_STEP, room + 1 - len(out)))
            except zlib.error:
                if self._raw_fallback and not self._started:
                    self._raw_fallback = False
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise
            self._started = True
            out += chunk
            pending = self._inflate.unconsumed_tail
            if len(out) > room or not pending:
                return bytes(out)


async def read_bounded(response: httpx.Response, limit: int, what: str) -> httpx.Response:
    """The streamed ``response``, read whole if it inflates to at most ``limit`` bytes, as a
    plain response holding the decoded body; else ``TooLarge`` (the connection is dropped)."""
    try:
        held = response.content  # an in-process transport (tests) hands it over already read
    except httpx.ResponseNotRead:
        pass
    else:
        if len(held) > limit:
            raise TooLarge(_too_large(what, limit, f"it holds {len(held):,} bytes, more"))
        return response
    raw = response.headers.raw
    body = await inflated(response.aiter_raw(), raw, limit, what)
    return httpx.Response(
        response.status_code,
        headers=decoded_headers(raw),
        content=body,
        request=response.request,
        extensions=response.extensions,
    )


async def inflated(
    chunks: AsyncIterator[bytes], headers: Sequence[tuple[bytes, bytes]], limit: int, what: str
) -> bytes:
    """The body of an answer with these raw ``headers``, read from ``chunks`` and inflated in
    bounded steps; ``TooLarge`` the moment it passes ``limit`` bytes."""
    # Repeated headers joined, as httpx's Headers.get joins them ("gzip, gzip" is refused).
    lengths = [v for k, v in headers if k.lower() == b"content-length"]
    encodings = [v for k, v in headers if k.lower() == b"content-encoding"]
    declared = b", ".join(lengths).strip()
    shown = (b", ".join(encodings).decode("latin-1") if encodings else "identity").strip().lower()
    if shown not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise TerminalError(f"{what} answered with content encoding {shown!r}, not asked for")
    if declared.isdigit() and shown in ("identity", "") and int(declared) > limit:
        raise TooLarge(_too_large(what, limit, f"it declares {int(declared):,} bytes, more"))
    inflater = None if shown in ("identity", "") else _Inflater(shown.removeprefix("x-"))
    body = bytearray()
    try:
        async for raw in chunks:
            data = raw if inflater is None else inflater.feed(raw, limit - len(body))
            body += data
            if len(body) > limit:
                raise TooLarge(_too_large(what, limit, "it holds more"))
    except zlib.error as exc:
        raise TerminalError(f"{what} answered a body that does not inflate: {exc}") from exc
    return bytes(body)


def decoded_headers(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The raw headers of an answer whose body is now held decoded: what described the body
    as it came over the wire goes. Raw bytes: a header that is not ASCII (latin-1, as HTTP/1.1
    allows) is kept as it came, where a decoded str would be refused when encoded back."""
    return [(k, v) for k, v in headers if k.lower() not in _DROPPED_HEADERS]


def _too_large(what: str, limit: int, why: str) -> str:
    return (
        f"{what}: the answer was refused: {why} than the {limit:,} bytes an answer may hold "
        "(PROVISIOND_CONNECTOR_MAX_RESPONSE_BYTES)"
    )
