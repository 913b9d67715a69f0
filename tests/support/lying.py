"""A SCIM target that says yes and does nothing: scim2-server whose PATCH and PUT of a user
answer 200 with the account as it stands, unchanged, while ``lying`` is on."""

from __future__ import annotations

from typing import Any

from provisiond.demo.target import build


class LyingTarget:
    """ASGI: while ``lying``, a PATCH or PUT of /Users/{id} is answered with a GET of it."""

    def __init__(self, token: str) -> None:
        self.inner = build([token])
        self.lying = True
        self.ignored: list[str] = []  # the paths of the writes it answered without applying

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            self.lying
            and scope["type"] == "http"
            and scope["method"] in ("PATCH", "PUT")
            and "/Users/" in scope["path"]
        ):
            while (await receive()).get("more_body"):
                pass  # the write is read and dropped

            async def no_body() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            self.ignored.append(scope["path"])
            await self.inner({**scope, "method": "GET", "query_string": b""}, no_body, send)
            return
        await self.inner(scope, receive, send)
