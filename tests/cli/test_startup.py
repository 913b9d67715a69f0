"""The command starts without the server: its modules load only for the commands that need them.

Behaviour, not timing (bench/cli_startup.py has the figures): what ``import provisiond.cli.main``
and ``provisiond --help`` load, and that the lazily built command tree is the whole tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from provisiond.cli.main import ENTRIES
from tests.cli.conftest import invoke, ok

SERVER_MODULES = ("fastapi", "sqlalchemy", "alembic", "provisiond.engine", "provisiond.store",
                  "provisiond.api", "provisiond.web", "provisiond.connectors", "scim2_models")
# Loaded by the commands that need them, not at start.
LATE_MODULES = ("httpx", "rich.console", "rich.table", "rich.progress")


def loaded_after(*argv: str) -> set[str]:
    """The modules loaded by the end of ``provisiond ARGV``, in a fresh interpreter."""
    script = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print('MODULES=' + json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "from provisiond.cli.main import app\n"
        f"app(prog_name='provisiond', args={list(argv)!r})\n"
    )
    env = {**os.environ, "PROVISIOND_SERVER": "http://127.0.0.1:9", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)
    line = next(line for line in done.stderr.splitlines() if line.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_importing_the_command_loads_nothing_of_the_server() -> None:
    modules = loaded_after("--version")
    assert heavy(modules, SERVER_MODULES + LATE_MODULES) == []


def test_help_lists_every_command_without_the_server_or_http() -> None:
    modules = loaded_after("--help")
    assert heavy(modules, (*SERVER_MODULES, "httpx")) == []


def test_an_admin_command_loads_http_but_not_the_server() -> None:
    modules = loaded_after("apps", "list")  # nothing listens on port 9: exit 2, after loading
    assert "httpx" in modules
    assert heavy(modules, SERVER_MODULES) == []


@pytest.mark.parametrize("name", list(ENTRIES))
def test_the_root_help_summary_is_the_commands_own(name: str) -> None:
    """--help reads each command's first sentence without building it; it must be the same."""
    built = ENTRIES[name].load(name)
    summary = ENTRIES[name].summary(name)
    assert summary.get_short_help_str(1000) == built.get_short_help_str(1000)
    assert ok(invoke(name, "--help")).stdout.startswith(f"Usage: provisiond {name} ")


def test_root_help_is_whole_off_a_terminal() -> None:
    """Piped help is not cut at 80 columns, nor shows Rich's <bool> placeholders."""
    output = ok(invoke("--help")).stdout
    for name, entry in ENTRIES.items():
        line = next(line for line in output.splitlines() if line.strip().startswith(name + " "))
        assert line.split(None, 1)[1] == entry.summary(name).get_short_help_str(1000)
    assert [line for line in output.splitlines()[1:] if line.endswith("...")] == []
    assert "<bool>" not in output
    assert [line for line in output.splitlines() if line.endswith(":") and not line.startswith(" ")][-6:] == [
        "Server:", "Directory:", "Applications:", "Policies:", "Activity:", "Reports:"]


def test_subcommand_help_has_no_bool_placeholders() -> None:
    output = ok(invoke("provisioning", "set", "--help")).stdout
    assert "<bool>" not in output and "--create / --no-create" in output
