"""``provisiond token list|revoke``: API tokens, over the REST API (a super_admin token).

``token create`` stays a server command (cli/server.py): it makes the first token, before any
token exists to talk to the API with.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

import typer

from provisiond.cli.client import CliError, path, state
from provisiond.cli.output import Column, when

TOKEN_COLUMNS = (
    Column("ID", "id"),
    Column("NAME", "name"),
    Column("ROLE", "role"),
    Column("PREFIX", "prefix"),
    Column("STATUS", "status"),
    Column("CREATED", lambda t: when(t.get("created_at"))),
    Column("LAST USED", lambda t: when(t.get("last_used_at"))),
    Column("EXPIRES", lambda t: when(t.get("expires_at")) if t.get("expires_at") else "never"),
)
DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str) -> timedelta:
    """``90m``, ``12h``, ``30d``: how long a new token lives."""
    match = DURATION.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise typer.BadParameter("a duration such as 3600s, 90m, 12h or 30d")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def list_tokens(
    ctx: typer.Context,
    include_revoked: Annotated[
        bool, typer.Option("--all", help="Revoked tokens too.")
    ] = False,
) -> None:
    """List API tokens (never their secrets: a prefix tells them apart)."""
    st = state(ctx)
    page = st.api.get("/tokens", include_revoked=include_revoked)
    st.out.page(page, TOKEN_COLUMNS, empty="no tokens")


def revoke_token(
    ctx: typer.Context,
    token: Annotated[
        str, typer.Argument(metavar="TOKEN", help="The token's id, prefix or (unique) name.")
    ],
) -> None:
    """Revoke an API token: it is refused from its next request on."""
    st = state(ctx)
    found = find_one(st.api.get("/tokens")["items"], token)
    revoked = st.api.post(path("tokens", found["id"], "revoke"))
    st.out.done(revoked, f"revoked API token {found['name']} ({found['prefix']}…)")


def find_one(items: list[dict[str, Any]], wanted: str, what: str = "API token") -> dict[str, Any]:
    """The one item whose id, prefix or name is ``wanted`` (tokens, SCIM clients)."""
    for key in ("id", "prefix", "name"):
        hits = [item for item in items if item[key] == wanted]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise CliError(f"{len(hits)} active {what}s have the {key} {wanted!r}: give its id", 1)
    raise CliError(f"no active {what} with the id, prefix or name {wanted!r}", 1)
