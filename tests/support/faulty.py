"""A real SCIM server that misbehaves on demand: scim2-server behind a fault-injecting layer."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from provisiond.demo.target import build


@dataclass
class Fault:
    method: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay: float = 0.0


class FaultyTarget:
    """ASGI: answers the next ``times`` requests of ``method`` with ``status``, then behaves."""

    def __init__(self, token: str) -> None:
        self.inner = build([token])
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request, as ``requests``

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append((scope["method"], scope["path"]))
            self.arrivals.append(time.monotonic())
            fault = next(
                (f for f in self.faults if f.method == scope["method"] and f.times > 0), None
            )
            if fault is not None:
                fault.times -= 1
                if fault.delay and await _client_left_within(receive, fault.delay):
                    return  # the client went away (killed, timed out): nothing to answer
                body = json.dumps(
                    fault.body
                    or {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                        "status": str(fault.status),
                        "detail": f"injected {fault.status}",
                    }
                ).encode()
                headers = [(b"content-type", b"application/scim+json")] + [
                    (k.lower().encode(), v.encode()) for k, v in fault.headers.items()
                ]
                await send(
                    {"type": "http.response.start", "status": fault.status, "headers": headers}
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.inner(scope, receive, send)


async def _client_left_within(receive: Any, seconds: float) -> bool:
    """Hold the request for ``seconds``, or until its client disconnects (True then)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), seconds)
    except TimeoutError:
        return False
    return True
