"""``provisiond apps update``: fix an app's connector without deleting and recreating the app,
against a real server and a real SCIM app; its secret never on the command line nor printed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Run, flat, ok
from tests.e2e.conftest import TARGET_TOKEN


def test_move_an_app_to_its_real_base_url_and_give_it_a_new_token(
    cli: Run, api: httpx.Client, target: str
) -> None:
    name = f"crm-{str(time.monotonic_ns())[-8:]}"
    wrong = "http://127.0.0.1:9/scim/v2"  # nothing listens there
    ok(cli("apps", "create", name, "--base-url", wrong, "--auth", "bearer", "--token-stdin",
           input="stale-token\n"))
    app_id = api.get(f"/apps/{name}").json()["id"]
    assert cli("provisioning", "test", name).exit_code == 1

    # Nothing to change, or another kind's options: refused before anything is sent.
    assert cli("apps", "update", name).exit_code == 2
    stray = cli("apps", "update", name, "--password-stdin", input="x\n")
    assert stray.exit_code == 2 and "do not apply to --auth bearer" in flat(stray.output)

    # A kept secret does not follow the app to another host: the server says so, nothing changes.
    moved = cli("apps", "update", name, "--base-url", target)
    assert moved.exit_code == 1 and "credentials are only kept while the scheme and host" in flat(moved.output)
    assert api.get(f"/apps/{app_id}").json()["connector"]["base_url"] == wrong

    # The base URL and a new token from stdin: the connection test passes.
    result = ok(cli("apps", "update", name, "--base-url", target, "--token-stdin",
                    input=TARGET_TOKEN + "\n"))
    assert result.stdout.strip() == f"updated app {name}: base url, auth token"
    assert TARGET_TOKEN not in result.output
    assert api.get(f"/apps/{app_id}").json()["connector"]["base_url"] == target
    ok(cli("provisioning", "test", name))

    # The label alone keeps the connector and its secret.
    ok(cli("apps", "update", app_id, "--label", "Customer Relations"))
    shown = api.get(f"/apps/{app_id}").json()
    assert shown["label"] == "Customer Relations" and shown["connector"]["auth"]["secret_set"]
    ok(cli("provisioning", "test", name))
    logged = api.get("/logs", params={"app": app_id, "q": "", "limit": 50}).text
    assert TARGET_TOKEN not in logged and "stale-token" not in logged


# The store plays no part in a profile: SQLite only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pick_and_edit_an_apps_dialect_profile(
    cli: Run, api: httpx.Client, target: str, tmp_path: Path
) -> None:
    name = f"erp-{str(time.monotonic_ns())[-8:]}"
    ok(cli("apps", "create", name, "--base-url", target, "--auth", "bearer", "--token-stdin",
           "--profile", "okta-compatible", input=TARGET_TOKEN + "\n"))
    assert api.get(f"/apps/{name}").json()["connector"]["profile"]["patch"] == "no-path"
    tested = ok(cli("provisioning", "test", name))
    assert "note: user updates are sent as one PATCH replace without a path" in flat(tested.output)

    # An unknown name is refused by the server with what it expects; nothing changes.
    bad = cli("apps", "update", name, "--profile", "workday")
    assert bad.exit_code == 1 and "profile" in flat(bad.output)
    assert api.get(f"/apps/{name}").json()["connector"]["profile"]["name"] == "okta-compatible"

    # A document starts from the profile it names: here the RFC's, without PATCH.
    document = tmp_path / "profile.json"
    document.write_text(json.dumps({"name": "rfc", "patch": "none", "requests_per_hour": 1000}))
    result = ok(cli("apps", "update", name, "--profile", f"@{document}"))
    assert result.stdout.strip() == f"updated app {name}: profile"
    tested = flat(ok(cli("provisioning", "test", name)).output)
    assert "this app does not support PATCH: updates will be sent as PUT" in tested
    assert "at most 1,000 requests an hour" in tested
