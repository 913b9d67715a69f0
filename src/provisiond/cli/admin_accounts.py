"""``provisiond admin create``: console administrators, made on the server like API tokens.

The password is read from standard input when it is not a terminal (``printf %s "$PW" |
provisiond admin create --username ada``), otherwise prompted for twice; never from the
command line, which every user of the machine can read.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from provisiond.cli.client import CliError, state
from provisiond.cli.server import InitOption, existing_database, load_settings
from provisiond.services.context import Actor, Role

app = typer.Typer(help="Console administrators, made on the server.", no_args_is_help=True)


def _password() -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise CliError("no password given (pipe it on standard input, or type it at the prompt)", 2)
    return password


@app.command("create")
def create(
    ctx: typer.Context,
    username: Annotated[str, typer.Option(help="The sign-in name (lower case).")],
    role: Annotated[Role, typer.Option(help="What the admin may do.")] = Role.SUPER_ADMIN,
    apps: Annotated[
        list[str] | None,
        typer.Option("--app", help="An app (name or id) an app_admin manages; repeat for more."),
    ] = None,
    init: InitOption = False,
) -> None:
    """Create a console admin account; the password comes from stdin or a prompt.

    The database used is said on stderr; a missing or empty one is refused unless --init."""
    # The server's modules load here, not at import: every other command starts without them.
    from provisiond.errors import ProvisiondError
    from provisiond.services import admins

    settings = load_settings()
    # The database is checked before the password is asked for: a wrong one is refused at once.
    with existing_database(settings, state(ctx).out, init=init) as db:
        password = _password()
        try:
            with db.session() as session:
                admin = admins.create_admin(
                    session,
                    Actor("cli"),
                    username=username,
                    password=password,
                    role=role.value,
                    apps=apps or [],
                )
                name, granted = admin.username, list(admin.apps)
        except ProvisiondError as exc:
            raise CliError(exc.detail, 1) from None
    out = state(ctx).out
    if out.json:
        out.print_json({"username": name, "role": role.value, "apps": granted})
    else:
        out.line(f"created console admin {name} ({role.value})")
