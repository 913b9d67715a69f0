"""A real SCIM server that is slow, fails a share of its requests, and keeps count of it all.

scim2-server (the demo target) behind a layer that adds latency to every request, answers
every ``fail_every``-th request with 500 and every ``throttle_every``-th with 429 (Retry-After),
holds every ``stall_every``-th past the client's timeout, and records what the cluster tests
check: the most requests ever in flight at once, each request's arrival time, and how many
creates succeeded per userName.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

from provisiond.demo.target import build


class ShakyTarget:
    def __init__(
        self,
        token: str,
        *,
        latency: float = 0.0,
        fail_every: int = 0,
        throttle_every: int = 0,
        stall_every: int = 0,
        stall_seconds: float = 0.0,
    ) -> None:
        self.inner = build([token])
        self.latency = latency
        self.fail_every, self.throttle_every = fail_every, throttle_every
        self.stall_every, self.stall_seconds = stall_every, stall_seconds
        self.seen = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []  # time.monotonic() of each request to /Users or /Groups
        self.created: Counter[str] = Counter()  # userName -> successful POST /Users

    def most_within(self, seconds: float) -> int:
        """The most requests that arrived within any ``seconds`` of each other."""
        times = sorted(self.arrivals)
        most, first = 0, 0
        for last, moment in enumerate(times):
            while moment - times[first] >= seconds:
                first += 1
            most = max(most, last - first + 1)
        return most

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not ("/Users" in path or "/Groups" in path):
            await self.inner(scope, receive, send)  # discovery, health: not counted
            return
        self.seen += 1
        n = self.seen
        self.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.stall_every and n % self.stall_every == 0:
                await asyncio.sleep(self.stall_seconds)  # past the client's timeout
                await _answer(send, 503, {"detail": "stalled"})
                return
            if self.fail_every and n % self.fail_every == 0:
                await _answer(send, 500, {"detail": "injected 500"})
                return
            if self.throttle_every and n % self.throttle_every == 0:
                await _answer(send, 429, {"detail": "slow down"}, [(b"retry-after", b"1")])
                return
            await self._counted(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _counted(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on; a POST /Users that succeeds is counted under its userName."""
        if not (scope["method"] == "POST" and scope["path"].endswith("/Users")):
            await self.inner(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 201:
                self.created[json.loads(body).get("userName", "?")] += 1
            await send(message)

        await self.inner(scope, replay, watch)


async def _answer(
    send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status), **body}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/scim+json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": payload})
