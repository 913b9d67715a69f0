"""Reading a secret the CLI must send: from stdin (a hidden prompt on a terminal) or from an
environment variable, never from an argument (a command line shows in ``ps``)."""

from __future__ import annotations

import os
import sys

import typer


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
