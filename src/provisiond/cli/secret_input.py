"""Reading a secret the CLI must send: from stdin (a hidden prompt on a terminal) or from an
environment variable, never from an argument (a command line shows in ``ps``)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

# The options every LDAP command takes (an app's bind, an import's bind).
LdapUrl = Annotated[str, typer.Option("--url", help="ldap://host[:port] or ldaps://host[:port].")]
BindPasswordStdin = Annotated[
    bool, typer.Option("--bind-password-stdin", help="The bind password, from stdin.")
]
BindPasswordEnv = Annotated[
    str | None, typer.Option("--bind-password-env", metavar="VAR", help="The bind password, from $VAR.")
]
StartTls = Annotated[bool, typer.Option("--start-tls/--no-start-tls", help="StartTLS on an ldap:// URL.")]


def bind_password(from_stdin: bool, env: str | None) -> str:
    return read_secret(
        "bind password", "bind-password", from_stdin=from_stdin, env=env, needed_by="--bind-dn"
    )


def read_secret(what: str, flag: str, *, from_stdin: bool, env: str | None, needed_by: str) -> str:
    """``what`` read as ``--FLAG-stdin`` or ``--FLAG-env VAR`` say; ``needed_by`` names the
    option that made it necessary, for the error when neither is given."""
    if from_stdin and env:
        raise typer.BadParameter(f"give --{flag}-stdin or --{flag}-env, not both")
    if env:
        value = os.environ.get(env, "")
        if not value.strip():
            raise typer.BadParameter(
                f"the environment variable {env} is not set", param_hint=f"--{flag}-env"
            )
    elif from_stdin:
        if sys.stdin.isatty():
            value = typer.prompt(what.capitalize(), hide_input=True, err=True)
        else:
            value = sys.stdin.read()
        if not value.strip():
            raise typer.BadParameter(f"no {what} on stdin", param_hint=f"--{flag}-stdin")
    else:
        raise typer.BadParameter(
            f"{needed_by} needs the {what}: --{flag}-stdin or --{flag}-env VAR",
            param_hint=needed_by.split()[0],
        )
    return value.strip()
