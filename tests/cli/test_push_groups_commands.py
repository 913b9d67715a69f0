"""``provisiond push-groups ...`` against a real server and the real scim2-server (both backends):
the app's group appears, follows the directory, is corrected after drift, and goes away."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.cli.conftest import Run, flat, ok
from tests.e2e.conftest import TARGET_TOKEN, eventually, remote_user
from tests.support.remote_groups import remote_group, remote_ids, remote_members, set_members

Json = Callable[..., Any]


def _user(cli_json: Json, login: str) -> str:
    first, _, last = login.partition(".")
    created = cli_json("users", "create", "--login", login, "--email", f"{login}@example.com",
                       "--first-name", first.title(), "--last-name", last.title())
    return str(created["id"])


def _group(cli_json: Json, cli: Run, name: str, *members: str) -> str:
    group = str(cli_json("groups", "create", name)["id"])
    if members:
        ok(cli("groups", "add", group, *members))
    return group


def test_push_list_show_sync_and_unpush(
    cli: Run, cli_json: Json, target: str, scim: httpx.Client
) -> None:
    s = str(time.monotonic_ns())[-8:]
    app = f"pg-{s}"
    ok(cli("apps", "create", app, "--base-url", target, "--auth", "bearer", "--token-env", "T",
           env={"T": TARGET_TOKEN}))
    ann, bob, cy = (_user(cli_json, f"{n}.p{s}") for n in ("ann", "bob", "cy"))
    staff = _group(cli_json, cli, f"Staff {s}", ann, bob)  # who has an account in the app
    eng = f"Platform Eng {s}"  # a name with spaces: one path segment, escaped
    _group(cli_json, cli, eng, ann, bob, cy)
    ok(cli("assign", app, "--group", staff))

    # The push_groups feature is off: refused, with the reason, and nothing in the app.
    refused = cli("push-groups", "add", app, eng)
    assert refused.exit_code == 1 and "push_groups" in flat(refused.stderr), refused.output
    assert "error:" in refused.stderr and remote_group(scim, eng) is None
    ok(cli("provisioning", "set", app, "--push-groups"))
    assert cli_json("provisioning", "show", app)["features"]["push_groups"] is True
    ok(cli("provisioning", "enable", app, "--wait"))

    # Pushed by name: the app's group holds Ann and Bob; Cy has no account there.
    pushed = ok(cli("push-groups", "add", app, eng, "--wait"))
    assert f"group {eng} is in {app} with 2 member(s)" in pushed.stdout
    expected = remote_ids(scim, f"ann.p{s}", f"bob.p{s}")
    assert remote_members(scim, eng) == expected
    listing = ok(cli("push-groups", "list", app)).stdout
    header, *rows = listing.splitlines()
    assert header.split()[:4] == ["GROUP", "ID", "NAME", "STATUS"]
    assert len(rows) == 1 and eng in rows[0] and "active" in rows[0]
    item = cli_json("push-groups", "list", app)["items"][0]
    assert item["members"] == 2 and item["linked"] is False and item["unpush_action"] == "leave"
    shown = ok(cli("push-groups", "get", app, eng)).stdout
    remote = remote_group(scim, eng)
    assert remote is not None and remote["id"] in shown
    assert f"ann.p{s}" in shown and f"bob.p{s}" in shown and f"cy.p{s}" not in shown
    again = cli("push-groups", "add", app, item["group_id"])
    assert again.exit_code == 1 and "already pushed" in flat(again.stderr)

    # Bob is taken out of the group in the app itself; a sync puts him back.
    set_members(scim, eng, remote_ids(scim, f"ann.p{s}"))
    synced = ok(cli("push-groups", "sync", app, eng, "--wait"))
    assert f"group {eng} is in {app} with 2 member(s)" in synced.stdout
    assert remote_members(scim, eng) == expected

    # A directory change reaches the app without any command.
    ok(cli("groups", "remove", item["group_id"], bob))
    eventually(lambda: remote_members(scim, eng) == remote_ids(scim, f"ann.p{s}"))
    assert remote_user(scim, f"bob.p{s}")["active"] is True  # type: ignore[index]

    # Unpushed with --delete: the app's group goes, and so does the row.
    removed = ok(cli("push-groups", "remove", app, eng, "--delete", "--wait"))
    assert f"unpushed group {eng} from {app}; the app's group was deleted" in removed.stdout
    assert remote_group(scim, eng) is None
    gone = cli("push-groups", "list", app)
    assert gone.exit_code == 0 and "no pushed groups" in gone.stderr
    missing = cli("push-groups", "get", app, eng)
    assert missing.exit_code == 1 and "is not pushed" in flat(missing.stderr)


def test_unpush_leaves_the_group_by_default_and_bad_input_is_refused(
    cli: Run, cli_json: Json, target: str, scim: httpx.Client
) -> None:
    s = str(time.monotonic_ns())[-8:]
    app = f"pgl-{s}"
    ok(cli("apps", "create", app, "--base-url", target, "--auth", "bearer", "--token-env", "T",
           env={"T": TARGET_TOKEN}))
    dee = _user(cli_json, f"dee.l{s}")
    ops = f"Ops-{s}"
    ops_id = _group(cli_json, cli, ops, dee)
    ok(cli("assign", app, "--user", dee))
    ok(cli("provisioning", "set", app, "--push-groups"))

    unknown = cli("push-groups", "add", app, f"no-such-group-{s}")
    assert unknown.exit_code == 1 and f"no-such-group-{s}" in flat(unknown.stderr)
    bad = cli("push-groups", "add", app, ops, "--unpush-action", "shred")
    assert bad.exit_code == 2 and "shred" in flat(bad.output)
    ghost = cli("push-groups", "add", f"no-app-{s}", ops)
    assert ghost.exit_code == 1 and "error:" in ghost.stderr

    # Pushed while provisioning is off: accepted, but nothing happens until it is on.
    waiting = cli("--json", "push-groups", "add", app, ops_id, "--wait", "--timeout", "0.5")
    assert waiting.exit_code == 1 and "is still pending after 0.5 s" in flat(waiting.stderr)
    assert remote_group(scim, ops) is None
    ok(cli("provisioning", "enable", app, "--wait"))  # the full sync sends pushed groups too
    eventually(lambda: remote_members(scim, ops) == remote_ids(scim, f"dee.l{s}"))
    state = eventually(lambda: (p := cli_json("push-groups", "get", app, ops))["members"] and p)
    assert state["status"] == "active" and state["unpush_action"] == "leave"
    assert [m["login"] for m in state["member_list"]] == [f"dee.l{s}"]
    both = cli("push-groups", "remove", app, ops, "--delete", "--leave")
    assert both.exit_code == 2 and "not both" in flat(both.output)

    # Without --delete or --leave: as chosen when pushed (leave). The app's group stays.
    removed = ok(cli("push-groups", "remove", app, ops_id, "--wait"))
    assert "the app's group was left as it is" in removed.stdout
    assert cli_json("push-groups", "list", app)["items"] == []
    assert remote_members(scim, ops) == remote_ids(scim, f"dee.l{s}")
    not_pushed = cli("push-groups", "sync", app, ops)
    assert not_pushed.exit_code == 1 and "is not pushed" in flat(not_pushed.stderr)
