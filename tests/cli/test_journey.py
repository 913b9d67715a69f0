"""The administrator's journey through the CLI, against a real server and a real SCIM app,
on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.cli.conftest import Run, flat, ok
from tests.e2e.conftest import TARGET_TOKEN, eventually, remote_user

Json = Callable[..., Any]


def test_journey(cli: Run, cli_json: Json, target: str) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    wiki = f"wiki-{suffix}"

    # Users: two engineers (one with custom attributes), one staged outsider.
    created = ok(cli("users", "create", "--login", f"ada.{suffix}", "--email", f"ada.{suffix}@example.com",
                     "--first-name", "Ada", "--last-name", "Lovelace", "--department", "Engineering",
                     "--attr", "costCenter=42", "--attr", "contractor:=false"))
    assert created.stdout.startswith(f"created user ada.{suffix} (active): ")
    ada = created.stdout.strip().rsplit(" ", 1)[1]
    bob = cli_json("users", "create", "--login", f"bob.{suffix}", "--email", f"bob.{suffix}@example.com",
                   "--first-name", "Bob", "--last-name", "Builder")["id"]
    eve = cli_json("users", "create", "--login", f"eve.{suffix}", "--email", f"eve.{suffix}@example.com",
                   "--first-name", "Eve", "--last-name", "Outsider", "--staged")
    assert eve["status"] == "staged"

    listing = ok(cli("users", "list", "--q", suffix)).stdout
    header, *rows = listing.splitlines()
    assert header.split() == ["ID", "LOGIN", "EMAIL", "NAME", "STATUS"]
    assert any(ada in row and "Ada Lovelace" in row and row.endswith("active") for row in rows)
    assert [u["id"] for u in cli_json("users", "list", "--status", "staged", "--q", suffix)["items"]] == [eve["id"]]
    shown = ok(cli("users", "get", ada)).stdout
    assert "costCenter      42" in shown and "contractor      no" in shown
    ok(cli("users", "update", ada, "--title", "Countess", "--unset", "costCenter"))
    profile = cli_json("users", "get", ada)["profile"]
    assert profile["title"] == "Countess" and "costCenter" not in profile

    # A group with both engineers.
    group = cli_json("groups", "create", f"Engineering {suffix}", "--description", "The engineers")["id"]
    ok(cli("groups", "add", group, ada, bob))
    members = ok(cli("groups", "members", group)).stdout
    assert f"ada.{suffix}" in members and f"bob.{suffix}" in members and f"eve.{suffix}" not in members
    assert f"Engineering {suffix}  2" in ok(cli("groups", "list", "--q", suffix)).stdout

    # An app; its token comes on stdin and is never shown again.
    out = ok(cli("apps", "create", wiki, "--label", "Wiki", "--base-url", target, "--auth", "bearer",
                 "--token-stdin", input=TARGET_TOKEN + "\n"))
    assert out.stdout.startswith(f"created app {wiki}: ")
    shown = ok(cli("apps", "get", wiki)).stdout
    assert "secret set    yes" in shown and "provisioning  disabled" in shown
    assert TARGET_TOKEN not in shown + cli("--json", "apps", "get", wiki).stdout
    assert wiki in ok(cli("apps", "list")).stdout

    # Settings, a connection test, then provisioning on.
    ok(cli("provisioning", "set", wiki, "--no-password-on-create", "--concurrency", "2", "--rate-limit", "50"))
    settings = cli_json("provisioning", "show", wiki)
    assert settings["concurrency"] == 2 and settings["rate_limit_per_second"] == 50
    assert settings["features"]["create_users"] is True and settings["enabled"] is False
    test = ok(cli("provisioning", "test", wiki)).stdout.splitlines()
    assert test[0].startswith("✓ discovery: ") and test[1].startswith("✓ authenticated read: ")
    assert test[-1] == "connection OK"
    assert "last test           ✓ passed" in ok(cli("provisioning", "show", wiki)).stdout
    enabled = ok(cli("provisioning", "enable", wiki, "--wait"))
    assert f"provisioning of {wiki} enabled; full sync" in enabled.stdout
    assert "succeeded: nothing to do" in enabled.stdout

    # Assigning the group provisions both engineers, and only them.
    assignment = cli_json("assign", wiki, "--group", group)
    assert assignment["principal_type"] == "group"
    assert assignment["id"] in ok(cli("assignments", wiki)).stdout

    with httpx.Client(base_url=target + "/", headers={"Authorization": f"Bearer {TARGET_TOKEN}"}) as scim:
        eventually(lambda: remote_user(scim, f"ada.{suffix}"))
        eventually(lambda: remote_user(scim, f"bob.{suffix}"))
        assert remote_user(scim, f"eve.{suffix}") is None

    # A full sync, with progress (on stderr) and its counts.
    synced = ok(cli("sync", wiki))
    assert "2/2" in synced.stderr
    assert "succeeded: 2 unchanged" in synced.stdout
    run = cli_json("sync", wiki, "--no-wait")
    assert run["status"] in ("running", "succeeded") and run["total"] == 2

    accounts = ok(cli("accounts", wiki)).stdout
    assert f"ada.{suffix}" in accounts and f"bob.{suffix}" in accounts and "active" in accounts

    # The activity log tells the story; the queue has nothing dead.
    logs = ok(cli("logs", "--app", wiki, "--limit", "200")).stdout
    for action in ("app.lifecycle.create", "app.provisioning.test", "app.provisioning.enable",
                   "app.assignment.create", "app.user.provision", "app.run.finish"):
        assert action in logs, (action, logs)
    events = cli_json("logs", "--user", ada, "--action", "app.user")["items"]
    assert [e["action"] for e in events][-1] == "app.user.provision"
    assert all(e["user_id"] == ada for e in events)
    assert ok(cli("logs", "--app", wiki, "--q", "no such text anywhere")).stderr.strip() == "no events"
    tasks = ok(cli("tasks", "list", "--app", wiki))
    assert wiki in tasks.stdout and "succeeded" in tasks.stdout
    assert ok(cli("tasks", "list", "--status", "dead", "--app", wiki)).stderr.strip() == "no tasks"

    # Lifecycle: deactivating Ada reaches the app; removing the assignment deprovisions Bob.
    assert ok(cli("users", "deactivate", ada)).stdout.strip() == f"user ada.{suffix} is now deprovisioned"
    with httpx.Client(base_url=target + "/", headers={"Authorization": f"Bearer {TARGET_TOKEN}"}) as scim:
        eventually(lambda: (remote_user(scim, f"ada.{suffix}") or {}).get("active") is False)
        ok(cli("unassign", wiki, assignment["id"]))
        eventually(lambda: (remote_user(scim, f"bob.{suffix}") or {}).get("active") is False)
    assert "no assignments" in ok(cli("assignments", wiki)).stderr

    # Tear down.
    ok(cli("provisioning", "disable", wiki))
    assert cli_json("provisioning", "show", wiki)["enabled"] is False
    ok(cli("groups", "remove", group, bob))
    ok(cli("groups", "delete", group))
    assert "deactivate user" in cli("users", "delete", eve["id"]).stderr  # staged: not yet
    ok(cli("users", "deactivate", eve["id"]))
    assert ok(cli("users", "delete", eve["id"])).stdout == f"deleted user {eve['id']}\n"
    ok(cli("apps", "delete", wiki))
    assert cli("apps", "get", wiki).exit_code == 1


def test_unknown_ids_are_exit_1_with_the_problem_detail(cli: Run) -> None:
    for args, detail in [
        (("users", "get", "nope"), "no user with id or login 'nope'"),
        (("apps", "get", "nope"), "no app with id or name 'nope'"),
        (("groups", "members", "nope"), "no group with id or name 'nope'"),
        (("tasks", "retry", "nope"), "no task with id 'nope'"),
        (("sync", "nope"), "no app with id or name 'nope'"),
    ]:
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr == f"error: {detail}\n"
        assert result.stdout == ""


def test_api_errors_are_explained(cli: Run, cli_json: Json) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    bad = cli("users", "create", "--login", f"x{suffix}", "--email", "not-an-email",
              "--first-name", "X", "--last-name", "Y")
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: profile.email: ")
    user = cli_json("users", "create", "--login", f"x{suffix}", "--email", f"x{suffix}@example.com",
                    "--first-name", "X", "--last-name", "Y")
    again = cli("users", "activate", user["id"])
    assert again.exit_code == 1
    assert again.stderr == "error: cannot activate a user who is active\n"
    assert cli("tasks", "list", "--app", "nope").exit_code == 1


def test_a_wrong_token_is_refused(cli: Run) -> None:
    result = cli("users", "list", env={"PROVISIOND_TOKEN": "pvd_not-a-token"})
    assert result.exit_code == 1
    assert result.stderr == "error: the API token is not valid\n"
    assert "pvd_not-a-token" not in result.output
    missing = cli("users", "list", env={"PROVISIOND_TOKEN": ""})
    assert missing.exit_code == 1
    assert "provisiond token create" in missing.stderr


def test_a_failing_connection_test_is_exit_1(cli: Run, target: str) -> None:
    name = f"broken-{str(time.monotonic_ns())[-8:]}"
    ok(cli("apps", "create", name, "--base-url", target, "--auth", "bearer", "--token-env", "WRONG_TOKEN",
           env={"WRONG_TOKEN": "not-the-target-token"}))
    test = cli("provisioning", "test", name)
    assert test.exit_code == 1
    assert "✓ discovery" in test.stdout and "✗ authenticated read" in test.stdout
    assert "connection test failed: authenticated read" in test.stdout
    assert "✗ failed" in ok(cli("provisioning", "show", name)).stdout
    enable = cli("provisioning", "enable", name)
    assert enable.exit_code == 1
    assert flat(enable.stderr).startswith("error: provisioning stays disabled: the connection test failed")
    sync = cli("sync", name)
    assert sync.exit_code == 1
    assert "enable it before a sync" in sync.stderr
