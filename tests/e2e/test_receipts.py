"""A leaver's revocation receipt: read back after the deprovisioning, signed, verified offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

from provisiond.cli.main import app as cli_app
from provisiond.domain import receipts
from tests.e2e.conftest import TARGET_TOKEN, assign, eventually, person
from tests.e2e.test_failures import enabled_app
from tests.support.lying import LyingTarget
from tests.support.servers import serve_app


def cli(*args: str, server: str = "", token: str = "") -> Result:
    env = {"PROVISIOND_SERVER": server, "PROVISIOND_TOKEN": token}
    return CliRunner().invoke(cli_app, list(args), env=env)


@pytest.fixture
def lying() -> Iterator[tuple[LyingTarget, str]]:
    target = LyingTarget(TARGET_TOKEN)
    with serve_app(target) as url:
        yield target, url + "/v2"


def receipt_of(api: httpx.Client, user_id: str) -> dict[str, Any]:
    answer = api.get(f"/users/{user_id}/receipt")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def active_accounts(api: httpx.Client, app_id: str) -> list[str]:
    items = api.get(f"/apps/{app_id}/accounts").json()["items"]
    return [a["user_id"] for a in items if a["status"] == "active" and a.get("remote_id")]


def test_a_leavers_receipt_lists_both_apps_confirmed_and_verifies_offline(
    api: httpx.Client, target: str, lying: tuple[LyingTarget, str], server: str,
    admin_token: str, tmp_path: Path,
) -> None:
    honest_second, second_base = lying
    honest_second.lying = False
    wiki = enabled_app(api, "wiki", target)
    chat = enabled_app(api, "chat", second_base)
    leaver = api.post("/users", json=person("lea.ver")).json()
    for app_id in (str(wiki["id"]), str(chat["id"])):
        assign(api, app_id, "user", leaver["id"])
        eventually(lambda: leaver["id"] in active_accounts(api, app_id))  # noqa: B023
    assert receipt_of(api, leaver["id"])["receipt"]["status"] == "not confirmed"

    api.post(f"/users/{leaver['id']}/lifecycle/deactivate").raise_for_status()
    document = eventually(
        lambda: (d := receipt_of(api, leaver["id"]))["receipt"]["status"] == "confirmed" and d
    )
    lines = document["receipt"]["apps"]
    assert [line["app"] for line in lines] == ["chat", "wiki"]
    for line in lines:
        assert line["action"] == "deactivate" and line["status"] == "confirmed", line
        assert line["read_back"]["state"] == "inactive" and line["remote_id"]
        assert line["applied_at"] <= line["read_back"]["at"]
    assert document["signature"]["algorithm"] == "Ed25519"

    # Saved by the CLI, checked offline against the published keys: no server is asked.
    saved, keys = tmp_path / "receipt.json", tmp_path / "keys.json"
    shown = cli("receipt", "lea.ver", "--output", str(saved), server=server, token=admin_token)
    assert shown.exit_code == 0, shown.output
    assert "confirmed" in shown.output and "chat" in shown.output
    fetched = cli("receipt", "keys", "-o", str(keys), server=server, token=admin_token)
    assert fetched.exit_code == 0, fetched.output
    checked = cli("receipt", "verify", str(saved), "--keys", str(keys), server="http://127.0.0.1:9")
    assert checked.exit_code == 0, checked.output
    assert "valid: receipt for lea.ver" in checked.output

    # Tampered with: which field, a forged signature, a key nobody published.
    tampered = json.loads(saved.read_text())
    tampered["receipt"]["apps"][1]["read_back"]["state"] = "absent"
    (tmp_path / "field.json").write_text(json.dumps(tampered))
    failed = cli("receipt", "verify", str(tmp_path / "field.json"), "--keys", str(keys))
    assert failed.exit_code == 1
    assert "field apps[1].read_back.state was changed" in failed.output

    forged = json.loads(saved.read_text())
    forged["signature"]["fields"]["apps[1].read_back.state"] = "0" * 64
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    failed = cli("receipt", "verify", str(tmp_path / "forged.json"))
    assert failed.exit_code == 1 and "bad signature" in failed.output

    stranger = receipts.sign(json.loads(saved.read_text())["receipt"], Ed25519PrivateKey.generate())
    (tmp_path / "stranger.json").write_text(json.dumps(stranger))
    assert cli("receipt", "verify", str(tmp_path / "stranger.json")).exit_code == 0
    failed = cli("receipt", "verify", str(tmp_path / "stranger.json"), "--keys", str(keys))
    assert failed.exit_code == 1 and "unknown key" in failed.output


def test_an_app_that_says_yes_but_keeps_the_account_active_raises_an_alarm(
    api: httpx.Client, lying: tuple[LyingTarget, str]
) -> None:
    target, base = lying
    app = enabled_app(api, "liar", base)
    leaver = api.post("/users", json=person("still.here")).json()
    assign(api, str(app["id"]), "user", leaver["id"])
    eventually(lambda: leaver["id"] in active_accounts(api, str(app["id"])))

    api.post(f"/users/{leaver['id']}/lifecycle/deactivate").raise_for_status()

    def events(action: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = api.get(
            "/logs", params={"user": leaver["id"], "action": action}
        ).json()["items"]
        return found

    alarms = eventually(lambda: len(events("app.user.revocation.unconfirmed")) >= 2 and events(
        "app.user.revocation.unconfirmed"))
    assert all(alarm["outcome"] == "failure" and alarm["details"]["alarm"] for alarm in alarms)
    assert "still shows account" in alarms[0]["message"]
    retried = [e for e in events("app.user.deprovision") if e["outcome"] == "retry"]
    assert retried and "reading it back shows the account is still active" in retried[0]["message"]
    assert len(target.ignored) >= 2  # each attempt sent the deactivation again

    line = receipt_of(api, leaver["id"])["receipt"]["apps"][0]
    assert line["status"] == "not confirmed" and line["read_back"]["state"] == "active"

    # Once the app does what it says, the task (retried again, or by hand once dead) confirms.
    target.lying = False

    def confirmed() -> bool:
        for task in api.get("/tasks", params={"status": "dead"}).json()["items"]:
            if task["user_id"] == leaver["id"]:
                api.post(f"/tasks/{task['id']}/retry").raise_for_status()
        return bool(receipt_of(api, leaver["id"])["receipt"]["status"] == "confirmed")

    eventually(confirmed)
