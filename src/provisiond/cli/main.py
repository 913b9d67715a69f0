"""The ``provisiond`` command: the root options and the command tree.

Server commands (``serve``, ``worker``, ``migrate``, ``token``, ``admin``, ``keys``) work on the database that
``PROVISIOND_*`` settings name; every other command talks to a running server over the REST API,
like kubectl: ``--server``/``PROVISIOND_SERVER``, ``--token``/``PROVISIOND_TOKEN``, ``--json``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from provisiond import __version__
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


@dataclass(frozen=True)
class Entry:
    """A top-level command: where it lives (a Typer group or a function) and its help panel."""

    module: str
    attribute: str
    panel: str

    def target(self) -> Any:
        return getattr(importlib.import_module(self.module), self.attribute)

    def load(self, name: str) -> Any:
        """The command, built: its options and arguments read from the function signatures."""
        target = self.target()
        if isinstance(target, typer.Typer):
            # Click's plain help, like the root's: Rich's boxes cost a tenth of a second to
            # import, and label every flag <bool>.
            target.rich_markup_mode = None
            command: Any = typer.main.get_group(target)
        else:
            single = typer.Typer(rich_markup_mode=None, add_completion=False)
            single.command(name)(target)
            command = typer.main.get_command(single)
        command.name = name
        command.rich_help_panel = self.panel
        return command

    def summary(self, name: str) -> TyperCommand:
        """Just the name and help text, for the root's --help: nothing built."""
        target = self.target()
        if isinstance(target, typer.Typer):
            text = target.info.help if isinstance(target.info.help, str) else None
        else:
            text = inspect.getdoc(target)
        return TyperCommand(name, help=text, rich_help_panel=self.panel)


# Every top-level command, in the order --help lists them. Each is built only when it is run
# (or asked for its own --help): building all of them from their signatures costs more CPU than
# the rest of a command's start, and a kubectl-style tool should start in a blink.
ENTRIES = {
    "serve": Entry("provisiond.cli.server", "serve", "Server"),
    "worker": Entry("provisiond.cli.server", "worker", "Server"),
    "migrate": Entry("provisiond.cli.server", "migrate_command", "Server"),
    "token": Entry("provisiond.cli.server", "token_app", "Server"),
    "scim-token": Entry("provisiond.cli.scim_tokens", "app", "Directory"),
    "admin": Entry("provisiond.cli.admin_accounts", "app", "Server"),
    "keys": Entry("provisiond.cli.keys", "app", "Server"),
    "users": Entry("provisiond.cli.user_files", "users", "Directory"),
    "groups": Entry("provisiond.cli.directory", "groups", "Directory"),
    "import-ldap": Entry("provisiond.cli.ldap_import", "import_ldap", "Directory"),
    "ldap-source": Entry("provisiond.cli.ldap_import", "ldap_source", "Directory"),
    "apps": Entry("provisiond.cli.apps", "apps", "Applications"),
    "provisioning": Entry("provisiond.cli.apps", "provisioning", "Applications"),
    "roles": Entry("provisiond.cli.roles", "roles", "Applications"),
    "push-groups": Entry("provisiond.cli.push_groups", "push_groups", "Applications"),
    "assign": Entry("provisiond.cli.sync", "assign", "Applications"),
    "unassign": Entry("provisiond.cli.sync", "unassign", "Applications"),
    "assignments": Entry("provisiond.cli.sync", "assignments", "Applications"),
    "sync": Entry("provisiond.cli.sync", "sync", "Applications"),
    "accounts": Entry("provisiond.cli.sync", "accounts", "Applications"),
    "import": Entry("provisiond.cli.imports", "import_app", "Applications"),
    "matches": Entry("provisiond.cli.imports", "matches", "Applications"),
    "orphans": Entry("provisiond.cli.imports", "orphans", "Applications"),
    "drift": Entry("provisiond.cli.imports", "drift", "Applications"),
    "policy": Entry("provisiond.cli.policy", "policy", "Policies"),
    "preview": Entry("provisiond.cli.policy", "preview", "Policies"),
    "provision": Entry("provisiond.cli.policy", "provision", "Policies"),
    "runs": Entry("provisiond.cli.policy", "runs", "Policies"),
    "logs": Entry("provisiond.cli.activity", "logs", "Activity"),
    "tasks": Entry("provisiond.cli.activity", "tasks", "Activity"),
    "workers": Entry("provisiond.cli.activity", "workers", "Activity"),
    "receipt": Entry("provisiond.cli.receipts", "receipt", "Reports"),
    "posture": Entry("provisiond.cli.posture", "posture", "Reports"),
}


class RootGroup(TyperGroup):
    """Global options anywhere on the line; ``CliError`` as ``error: ...`` and its exit code;
    the subcommands of ``ENTRIES``, each built when it is first needed."""

    _summaries = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(ENTRIES)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = ENTRIES.get(cmd_name)
        if entry is None:
            return None
        if self._summaries:
            return entry.summary(cmd_name)
        if cmd_name not in self.commands:
            self.commands[cmd_name] = entry.load(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._summaries = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._summaries = False

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The commands by panel (Server, Directory, ...), each with its whole first sentence."""
        panels: dict[str, list[tuple[str, str]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            panels.setdefault(ENTRIES[name].panel, []).append(
                (name, command.get_short_help_str(limit=1000))
            )
        for panel, rows in panels.items():
            with formatter.section(panel):
                formatter.write_dl(rows)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            print_error(exc.message)
            raise typer.Exit(exc.code) from None


def help_width() -> dict[str, int]:
    """Help as wide as the terminal (Click stops at 80 columns); off one, never wrapped or cut."""
    if sys.stdout.isatty():
        return {"max_content_width": shutil.get_terminal_size().columns}
    columns = os.environ.get("COLUMNS", "")
    return {"terminal_width": int(columns) if columns.isdigit() else 1000}


app = typer.Typer(
    name="provisiond",
    cls=RootGroup,
    help="provisiond: one directory, every application kept in sync over SCIM 2.0.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,  # locals may hold the API token or an app's secret
    context_settings={"help_option_names": ["-h", "--help"], **help_width()},
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


if __name__ == "__main__":
    app(prog_name="provisiond")
