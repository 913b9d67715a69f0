"""A SCIM target whose account listing pages wrongly, on top of the stock scim2-server.

Discovery and every other request go to scim2-server (provisiond.demo.target); ``GET /Users``
without a filter serves ``accounts`` the way a misbehaving app does: ``count`` ignored (pages
of ``page`` items whatever was asked), ``totalResults`` left out or wrong, each page repeating
the last ``overlap`` items of the one before, and a ``503`` for the next ``fail_at`` page
requests ``fail_times`` times (an import interrupted halfway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from provisiond.demo.target import build

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


@dataclass
class BadPager:
    token: str
    accounts: list[dict[str, Any]] = field(default_factory=list)
    page: int = 7
    overlap: int = 2
    total: int | None = None  # None: left out; otherwise claimed as given
    fail_at: int | None = None  # the page number (1-based, per walk) that fails
    fail_times: int = 0
    listings: int = 0  # list requests served

    def __post_init__(self) -> None:
        self.inner = build([self.token])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        query = parse_qs(scope.get("query_string", b"").decode())
        listing = (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].rstrip("/") == "/v2/Users"
            and "filter" not in query
        )
        if not listing:
            await self.inner(scope, receive, send)
            return
        start = int(query.get("startIndex", ["1"])[0])
        self.listings += 1
        number = (start - 1) // self.page + 1 if start > 1 else 1
        if self.fail_at is not None and number >= self.fail_at and self.fail_times > 0:
            self.fail_times -= 1
            await _answer(
                send,
                503,
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "503",
                    "detail": "try later",
                },
            )
            return
        begin = max(0, start - 1 - (self.overlap if start > 1 else 0))
        items = self.accounts[begin : begin + self.page]
        body: dict[str, Any] = {
            "schemas": [LIST],
            "Resources": items,
            "startIndex": start,
            "itemsPerPage": len(items),
        }
        if self.total is not None:
            body["totalResults"] = self.total
        await _answer(send, 200, body)


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/scim+json")],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def account(remote_id: str, user_name: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER], "id": remote_id, **extra}
    if user_name is not None:
        body["userName"] = user_name
    return body
