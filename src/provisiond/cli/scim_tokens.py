"""``provisiond scim-token create|list|revoke``: SCIM client tokens, over the REST API.

A SCIM token lets Okta, Entra or an HR system provision into the directory over /scim/v2, and
nothing else; an admin token (``provisiond token``) is refused there.
"""

from __future__ import annotations

from typing import Annotated

import typer

from provisiond.cli.client import path, state
from provisiond.cli.output import Column, when
from provisiond.cli.tokens import find_one

app = typer.Typer(
    help="SCIM client tokens: how Okta, Entra or an HR system provisions into the directory.",
    no_args_is_help=True,
)

COLUMNS = (
    Column("ID", "id"),
    Column("NAME", "name"),
    Column("PREFIX", "prefix"),
    Column("STATUS", "status"),
    Column("CREATED", lambda c: when(c.get("created_at"))),
    Column("LAST USED", lambda c: when(c.get("last_used_at"))),
)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option(help="Who provisions with it (okta, entra, hr); the actor scim:NAME.")
    ],
) -> None:
    """Create a SCIM client and print its token: only the token, shown this once."""
    st = state(ctx)
    created = st.api.post("/scim-clients", json={"name": name})
    if st.out.json:
        st.out.print_json(created)
        return
    st.out.note(f"SCIM client {created['name']}: give its token to the IdP, shown this once")
    typer.echo(created["token"])


@app.command("list")
def list_clients(
    ctx: typer.Context,
    include_revoked: Annotated[bool, typer.Option("--all", help="Revoked ones too.")] = False,
) -> None:
    """List SCIM clients (never their tokens: a prefix tells them apart)."""
    st = state(ctx)
    page = st.api.get("/scim-clients", include_revoked=include_revoked)
    st.out.page(page, COLUMNS, empty="no SCIM clients")


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    client: Annotated[
        str, typer.Argument(metavar="CLIENT", help="The client's id, prefix or name.")
    ],
) -> None:
    """Revoke a SCIM client's token: /scim/v2 refuses it from its next request on."""
    st = state(ctx)
    found = find_one(st.api.get("/scim-clients")["items"], client, "SCIM client")
    revoked = st.api.post(path("scim-clients", found["id"], "revoke"))
    st.out.done(revoked, f"revoked SCIM client {found['name']} ({found['prefix']}…)")

