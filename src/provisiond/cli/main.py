"""The ``provisiond`` command: the root options and the command tree.

Server commands (``serve``, ``worker``, ``migrate``, ``token``, ``admin``, ``keys``) work on the database that
``PROVISIOND_*`` settings name; every other command talks to a running server over the REST API,
like kubectl: ``--server``/``PROVISIOND_SERVER``, ``--token``/``PROVISIOND_TOKEN``, ``--json``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from provisiond import __version__
from provisiond.cli import (
    activity,
    admin_accounts,
    apps,
    directory,
    keys,
    policy,
    push_groups,
    roles,
    server,
    sync,
)
from provisiond.cli.client import DEFAULT_SERVER, CliError, State
from provisiond.cli.output import Output, print_error

# Global options that may also follow the subcommand (``provisiond users list --json``).
# ``--token`` is not among them: ``apps create`` must never take an app's secret for it.
HOISTED_FLAGS = ("--json",)
HOISTED_OPTIONS = ("--server",)


def hoist_global_options(args: list[str]) -> list[str]:
    """Move the global options found anywhere (before ``--``) to the front, in order."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg in HOISTED_FLAGS or ("=" in arg and arg.partition("=")[0] in HOISTED_OPTIONS):
            front.append(arg)
        elif arg in HOISTED_OPTIONS and index + 1 < len(args):
            front.extend(args[index : index + 2])
            index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


class RootGroup(TyperGroup):
    """Global options anywhere on the line; ``CliError`` as ``error: ...`` and its exit code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            print_error(exc.message)
            raise typer.Exit(exc.code) from None


app = typer.Typer(
    name="provisiond",
    cls=RootGroup,
    help="provisiond: one directory, every application kept in sync over SCIM 2.0.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold the API token or an app's secret
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"provisiond {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    server_url: Annotated[
        str,
        typer.Option(
            "--server", envvar="PROVISIOND_SERVER", metavar="URL",
            help="The provisiond server that admin commands talk to.",
        ),
    ] = DEFAULT_SERVER,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="PROVISIOND_TOKEN", metavar="TOKEN", show_default=False,
            help="API token for admin commands. Prefer the environment variable: "
            "a command line is visible to every user of the machine.",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON instead of tables.")
    ] = False,
    _: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """provisiond: one directory, every application kept in sync over SCIM 2.0.

    Server commands use the PROVISIOND_* settings (PROVISIOND_DATABASE_URL, ...); admin commands
    talk to a running server with an API token (PROVISIOND_SERVER, PROVISIOND_TOKEN).
    """
    st = State(server=server_url, token=token or None, out=Output(json_output))
    ctx.obj = st
    ctx.call_on_close(st.close)


server.register(app)
app.add_typer(admin_accounts.app, name="admin", rich_help_panel="Server")
keys.register(app)
app.add_typer(directory.users, name="users", rich_help_panel="Directory")
app.add_typer(directory.groups, name="groups", rich_help_panel="Directory")
app.add_typer(apps.apps, name="apps", rich_help_panel="Applications")
app.add_typer(apps.provisioning, name="provisioning", rich_help_panel="Applications")
app.add_typer(roles.roles, name="roles", rich_help_panel="Applications")
app.add_typer(push_groups.push_groups, name="push-groups", rich_help_panel="Applications")
sync.register(app)
policy.register(app)
activity.register(app)

if __name__ == "__main__":
    app(prog_name="provisiond")
