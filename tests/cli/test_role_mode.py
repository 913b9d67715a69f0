"""``provisioning set --role-mode``: how roles from several group assignments combine, from the
command line (real server, SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.cli.conftest import Run, flat, ok
from tests.e2e.conftest import scim_app


def test_set_and_show_the_role_mode(
    cli: Run, cli_json: Callable[..., Any], api: httpx.Client, target: str
) -> None:
    name = f"rm-{str(time.monotonic_ns())[-8:]}"
    api.post("/apps", json=scim_app(name, target)).raise_for_status()
    assert cli_json("provisioning", "show", name)["role_mode"] == "priority"
    shown = ok(cli("provisioning", "set", name, "--role-mode", "combine")).stdout
    assert "role mode combine" in flat(shown)
    settings = cli_json("provisioning", "show", name)
    assert settings["role_mode"] == "combine"
    # The other settings stay as they were.
    assert settings["concurrency"] == api.get(f"/apps/{name}/provisioning").json()["concurrency"]
    refused = cli("provisioning", "set", name, "--role-mode", "both")
    assert refused.exit_code == 2 and "'both' is not one of" in flat(refused.output)
    assert cli_json("provisioning", "show", name)["role_mode"] == "combine"
