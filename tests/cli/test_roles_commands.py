"""``provisiond roles ...`` and ``assign --role``, against a real server (both backends)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.cli.conftest import Run, ok

Json = Callable[..., Any]


def test_roles_and_assign_with_roles(cli: Run, cli_json: Json, target: str) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    app = f"roles-{suffix}"
    cli_json("apps", "create", app, "--label", "R", "--base-url", target, "--auth", "none")
    ok(cli("roles", "create", app, "admin", "--description", "Everything"))
    ok(cli("roles", "create", app, "editor"))
    ok(cli("roles", "create", app, "billing", "--kind", "entitlement", "--value", "billing:rw"))
    listing = ok(cli("roles", "list", app)).stdout
    assert "billing" in listing and "entitlement" in listing and "billing:rw" in listing
    ok(cli("roles", "update", app, "editor", "--value", "writer"))
    editor = next(r for r in cli_json("roles", "list", app)["items"] if r["name"] == "editor")
    assert editor["expression"] == {"kind": "scim_role", "value": "writer"}

    group = cli_json("groups", "create", f"Leads {suffix}")["id"]
    created = cli_json("assign", app, "--group", group, "--role", "admin", "--role", "billing",
                       "--priority", "1")
    assert created["roles"] == ["admin", "billing"] and created["priority"] == 1
    assert "admin, billing" in ok(cli("assignments", app)).stdout
    refused = cli("roles", "delete", app, "admin")
    assert refused.exit_code != 0 and "granted by 1 assignment" in refused.stderr
    unknown = cli("assign", app, "--user", "nobody", "--role", "ghost")
    assert unknown.exit_code != 0
    ok(cli("roles", "delete", app, "editor"))
    assert "editor" not in ok(cli("roles", "list", app)).stdout
