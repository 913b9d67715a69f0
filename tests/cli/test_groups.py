"""Nested groups and group rules through the CLI, against a real server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.cli.conftest import Run, flat, ok

Json = Callable[..., Any]


def test_rules_and_nesting(cli: Run, cli_json: Json) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    ada = cli_json(
        "users",
        "create",
        "--login",
        f"ada.{suffix}",
        "--email",
        f"ada.{suffix}@example.com",
        "--first-name",
        "Ada",
        "--last-name",
        "L",
        "--department",
        "Sales",
    )["id"]
    sales = cli_json("groups", "create", f"Sales {suffix}", "--rule", 'user.department == "Sales"')
    assert sales["rule"] == 'user.department == "Sales"' and sales["member_count"] == 1
    staff = cli_json("groups", "create", f"Staff {suffix}")["id"]

    refused = cli("groups", "create", f"Bad {suffix}", "--rule", "user.department ==")
    assert refused.exit_code != 0 and "rule" in flat(refused.output)
    refused = cli("groups", "add", sales["id"], ada)
    assert refused.exit_code != 0 and "rule" in flat(refused.output)

    ok(cli("groups", "nest", staff, sales["id"]))
    assert "Sales" in flat(ok(cli("groups", "get", staff)).stdout)
    effective = cli_json("groups", "members", staff, "--effective")["items"]
    assert [u["id"] for u in effective] == [ada]
    assert cli_json("groups", "members", staff)["items"] == []
    cycle = cli("groups", "nest", sales["id"], staff)
    assert cycle.exit_code != 0 and "→" in flat(cycle.output)
    ok(cli("groups", "unnest", staff, sales["id"]))
    assert cli_json("groups", "get", staff)["children"] == []

    static = cli_json("groups", "update", sales["id"], "--no-rule")
    assert static["rule"] is None and static["member_count"] == 1
    ok(cli("groups", "remove", sales["id"], ada))
    assert (
        cli_json("groups", "update", sales["id"], "--rule", "has(user.department)")["member_count"]
        == 1
    )
