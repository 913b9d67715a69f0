"""The access posture report finds each kind of problem planted, and says where it is fixed."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
from typer.testing import CliRunner

from provisiond.cli.main import app as cli_app
from provisiond.engine import quarantine
from provisiond.runtime import Runtime
from provisiond.store.tables import Account, GroupMember, Revocation, Task, User, new_id, utcnow
from tests.e2e.conftest import assign, eventually, person
from tests.e2e.test_failures import enabled_app
from tests.support.faulty import Fault, FaultyTarget


def findings(api: httpx.Client, kind: str) -> list[dict[str, Any]]:
    answer = api.get("/reports/posture")
    assert answer.status_code == 200, answer.text
    return [f for f in answer.json()["findings"] if f["kind"] == kind]


def test_the_posture_report_finds_every_problem_planted(
    api: httpx.Client, runtime: Runtime, target: str, faulty: tuple[FaultyTarget, str],
    server: str, admin_token: str,
) -> None:
    broken, broken_base = faulty
    wiki = enabled_app(api, "wiki", target)
    crm = enabled_app(api, "crm", broken_base)
    off = api.post("/apps", json={"name": "off", "label": "Off", "connector": {
        "type": "scim2", "base_url": target, "auth": {"type": "none"}}}).json()
    assert findings(api, "provisioning_disabled")[0]["app"] == "off"

    # A create the app refuses for good: a dead task, and an assigned user without an account.
    broken.inject(Fault("POST", 400, times=1))
    refused = api.post("/users", json=person("re.fused")).json()
    assign(api, str(crm["id"]), "user", refused["id"])
    dead = eventually(lambda: findings(api, "dead_tasks"))
    assert dead[0]["app"] == "crm" and dead[0]["count"] == 1
    assert dead[0]["console"] == f"/tasks?status=dead&app={crm['id']}"
    missing = findings(api, "assigned_without_account")
    assert [(f["app"], f["reason"], [u["login"] for u in f["users"]]) for f in missing] == [
        ("crm", "task dead", ["re.fused"])
    ]

    # Planted behind the engine's back: a member of a nested group assigned to wiki (no task
    # was queued), a leaver whose account is still active with its deprovisioning queued, a
    # deprovisioning the app never confirmed, and a quarantine.
    parent = api.post("/groups", json={"name": "Staff"}).json()
    child = api.post("/groups", json={"name": "Interns"}).json()
    assert api.put(f"/groups/{parent['id']}/groups/{child['id']}").status_code == 204
    assign(api, str(wiki["id"]), "group", parent["id"])
    intern = api.post("/users", json=person("in.tern")).json()
    leaver = api.post("/users", json=person("le.aver")).json()
    now = utcnow()
    with runtime.db.session() as session:
        session.add(GroupMember(group_id=child["id"], user_id=intern["id"]))
        session.get_one(User, leaver["id"]).status = "deprovisioned"
        session.add(Account(app_id=off["id"], user_id=leaver["id"], remote_id="r-1",
                            status="active", applied={}))
        session.add(Task(id=new_id(), app_id=off["id"], subject_id=leaver["id"],
                         reason="user.lifecycle", status="queued", priority=0,
                         next_attempt_at=now + timedelta(days=1), correlation_id=new_id(),
                         created_at=now - timedelta(hours=2)))
        session.add(Revocation(app_id=off["id"], user_id=leaver["id"], action="deactivate",
                               remote_id="r-2", applied_at=now, read_state="active",
                               read_at=now, confirmed=False, correlation_id=new_id()))
        quarantine.enter(session, off["id"], "HTTP 503 on every request", correlation_id=new_id())

    missing = findings(api, "assigned_without_account")
    wiki_line = next(f for f in missing if f["app"] == "wiki")
    assert wiki_line["reason"] == "nothing queued"
    assert [u["login"] for u in wiki_line["users"]] == ["in.tern"]
    assert wiki_line["api"] == f"POST /api/v1/apps/{wiki['id']}/sync"
    leavers = findings(api, "deactivated_with_active_account")
    assert [(f["app"], f["count"], f["users"][0]["login"]) for f in leavers] == [
        ("off", 1, "le.aver")
    ]
    oldest = findings(api, "oldest_pending_deprovisioning")
    assert oldest[0]["users"][0]["login"] == "le.aver" and oldest[0]["app"] == "off"
    unconfirmed = findings(api, "revocation_unconfirmed")
    assert unconfirmed[0]["reason"] == "active"
    assert unconfirmed[0]["api"] == f"GET /api/v1/users/{leaver['id']}/receipt"
    quarantined = findings(api, "app_quarantined")
    assert quarantined[0]["api"] == f"POST /api/v1/apps/{off['id']}/provisioning/resume"
    report = api.get("/reports/posture").json()
    assert report["totals"]["orphans"] == 0 and report["notes"]
    kinds = [f["kind"] for f in report["findings"]]
    assert kinds.index("revocation_unconfirmed") < kinds.index("provisioning_disabled")

    # Exported: CSV from the API and the CLI, one finding a line.
    exported = api.get("/reports/posture", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["kind"] for row in rows} >= {"dead_tasks", "app_quarantined"}
    env = {"PROVISIOND_SERVER": server, "PROVISIOND_TOKEN": admin_token}
    shown = CliRunner().invoke(cli_app, ["posture", "--csv"], env=env)
    assert shown.exit_code == 0 and shown.output.splitlines() == exported.text.splitlines()
    table = CliRunner().invoke(cli_app, ["posture"], env=env)
    assert table.exit_code == 0 and "deactivated_with_active_account" in table.output
