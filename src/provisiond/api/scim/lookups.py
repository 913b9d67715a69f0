"""``GET /scim/v2/Users?filter=userName eq "…"`` on a short path, in front of the SCIM app.

Okta and Entra look a user up by userName before every create and on every import: it is
the hottest SCIM route. Through FastAPI it crossed ten ASGI layers, a thread hop, and the
ORM twice (bench/RESULTS.md §10b). Here it is one pure-ASGI step inside the app's own
middleware (so the body limit and the correlation id are those of every request), one read
transaction of Core statements, and, on SQLite, no thread hop: a WAL reader never waits for
a writer, and the read connection's busy timeout is 0, so the event loop is never held.

It answers only what it can answer exactly as the SCIM app would, with the same functions
(the request's parameters, ``render``, ``project``, the ListResponse): a valid, unrevoked
token whose last use is recorded; a ``userName eq`` filter; the first page. Anything else
goes on to the SCIM app unchanged, which answers it (an error, a ``sortBy``, a token whose
last use must be written, a busy database) as it always has.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import anyio.to_thread
import psycopg
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from provisiond.api.scim.deps import SCIM_PREFIX, base_url, bearer_token, list_query
from provisiond.api.scim.errors import SCIM_JSON, scim_json
from provisiond.api.scim.resources import list_body
from provisiond.errors import ProvisiondError
from provisiond.runtime import Runtime
from provisiond.services import scim_clients
from provisiond.services.inbound import lookups as scim_lookups
from provisiond.services.inbound.filters import simple_equality
from provisiond.services.inbound.resources import page_window, project
from provisiond.store.tables import utcnow

USERS_PATH = f"{SCIM_PREFIX}/Users"


@dataclass(frozen=True)
class Lookup:
    """What a lookup asks: whose token, which userName, and how the answer is shaped."""

    token: str
    login: str
    base: str
    attributes: tuple[str, ...]
    excluded: tuple[str, ...]


def lookup_of(scope: Scope) -> Lookup | None:
    """The lookup ``scope`` asks for; None for any request the SCIM app must answer itself.

    The parameters are read by the SCIM app's own functions, so they mean the same here."""
    if scope["method"] != "GET" or scope["path"] != USERS_PATH or scope.get("root_path"):
        return None
    request = Request(scope)
    headers = request.headers
    if "content-length" in headers or "transfer-encoding" in headers:
        return None  # a GET with a body: the body limit's business
    try:
        token = bearer_token(request)
        query = list_query(request)
    except ProvisiondError:
        return None  # its error is the SCIM app's to answer
    if query.filter is None or query.sort_by is not None:
        return None
    # A first page with room holds every match (one at most): totalResults is its length.
    offset, limit = page_window(query.start_index, query.count)
    if offset != 0 or limit < 1:
        return None
    equality = simple_equality(query.filter)
    if equality is None or equality[0].lower() != "username":
        return None
    return Lookup(token, equality[1], base_url(request), query.attributes, query.excluded)


def answer(rt: Runtime, lookup: Lookup) -> bytes | None:
    """The ListResponse's body, or None if the SCIM app must answer (see the module)."""
    try:
        with rt.db.reads() as reads:
            if scim_clients.client_in_good_standing(reads, lookup.token, utcnow()) is None:
                return None
            found = scim_lookups.rendered_by_login(reads, lookup.login, lookup.base)
    except sqlite3.OperationalError:
        return None  # SQLite busy (the reader does not wait): the SCIM app's session waits
    except psycopg.OperationalError:
        return None  # PostgreSQL away: the SCIM app's session retries and answers its own error
    resources = [project(body, lookup.attributes, lookup.excluded) for body in found]
    return scim_json(list_body(len(resources), 0, resources))


class UserNameLookups:
    """The pure-ASGI step in front of the SCIM app (see the module)."""

    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt
        self.on_loop: bool | None = None  # whether reads may run on the event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lookup = lookup_of(scope) if scope["type"] == "http" else None
        body = None if lookup is None else await self._answer(lookup)
        if body is None:
            await self.app(scope, receive, send)
            return
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", SCIM_JSON.encode()),
            ],
        })
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, lookup: Lookup) -> bytes | None:
        if self.on_loop is None:
            try:
                self.on_loop = await anyio.to_thread.run_sync(lambda: self.rt.db.reads_never_wait)
            except (sqlite3.OperationalError, psycopg.OperationalError):
                return None  # asked again on the next lookup; this one takes the long way
        if self.on_loop:
            return answer(self.rt, lookup)
        if self.rt.db.url.startswith("sqlite"):
            # In memory or not in WAL mode: a reader of its own per thread would see another
            # database, or wait on writers, and anyio's threads come and go (each would leave
            # a connection open). The SCIM app answers.
            return None
        # PostgreSQL: a pool checkout and a network round trip must not hold the loop.
        return await anyio.to_thread.run_sync(answer, self.rt, lookup)
