"""`provisiond workers` and /readyz: the worker beside the API is seen beating; `provisioning
status` and `resume`: an app's quarantine seen and ended."""

from __future__ import annotations

import json
import os

import httpx

from provisiond.engine import quarantine
from provisiond.runtime import Runtime
from tests.cli.conftest import Run, flat, ok
from tests.e2e.conftest import eventually, scim_app


def test_the_servers_worker_is_listed_running(cli: Run, server: str) -> None:
    def listed() -> list[dict[str, object]]:
        return list(json.loads(ok(cli("--json", "workers")).stdout)["items"])

    (worker,) = eventually(listed, 30)
    assert (worker["pid"], worker["state"]) == (os.getpid(), "running")
    table = flat(ok(cli("workers")).stdout)
    assert "running" in table and str(worker["id"]) in table
    ready = httpx.get(f"{server}/readyz").json()
    assert ready == {"status": "ok", "database": "ok", "worker": True}


def test_workers_needs_a_token(server: str) -> None:
    assert httpx.get(f"{server}/api/v1/workers").status_code == 401


def test_provisioning_status_shows_a_quarantine_and_resume_ends_it(
    cli: Run, api: httpx.Client, runtime: Runtime, target: str
) -> None:
    app = api.post("/apps", json=scim_app("held-app", target)).json()
    status = json.loads(ok(cli("--json", "provisioning", "status", "held-app")).stdout)
    assert status["state"] == "flowing"
    refused = cli("provisioning", "resume", "held-app")
    assert refused.exit_code != 0 and "not quarantined" in refused.output
    with runtime.db.session() as session:  # as the worker does when the app keeps failing
        quarantine.enter(session, app["id"], "17 of its last 20 requests failed",
                         correlation_id="c")
    shown = flat(ok(cli("provisioning", "status", "held-app")).stdout)
    assert "quarantined" in shown and "17 of its last 20 requests failed" in shown
    assert "next probe" in shown
    ok(cli("provisioning", "resume", "held-app"))
    assert json.loads(ok(cli("--json", "provisioning", "status", "held-app")).stdout)[
        "state"
    ] == "flowing"
    resumed = api.get("/logs", params={"action": "app.provisioning.resume"}).json()["items"]
    assert "resumed by" in resumed[0]["message"]
