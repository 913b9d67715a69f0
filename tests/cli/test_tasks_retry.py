"""Retry in bulk after an outage: ``tasks retry --app APP --all``, ``POST /api/v1/apps/{app}/tasks/retry``
against a real SCIM app that refused every create for a while."""

from __future__ import annotations

import httpx

from provisiond.runtime import Runtime
from provisiond.services import tokens
from provisiond.services.context import SYSTEM
from tests.cli.conftest import Run, ok
from tests.e2e.conftest import (
    eventually,
    faulty,  # noqa: F401 - a fixture
)
from tests.support.faulty import FaultyTarget
from tests.support.outage import dead_tasks_after_an_outage


def test_retry_every_dead_task_of_an_app_from_the_cli(
    cli: Run, api: httpx.Client, faulty: tuple[FaultyTarget, str]  # noqa: F811
) -> None:
    target, base = faulty
    app, logins = dead_tasks_after_an_outage(api, target, base, 3)

    # Who each dead task was for, by login.
    listing = ok(cli("tasks", "list", "--status", "dead", "--app", str(app["name"]))).stdout
    assert all(login in listing for login in logins)

    # Bad combinations change nothing.
    assert cli("tasks", "retry", "--all").exit_code == 2
    assert cli("tasks", "retry", "--app", str(app["name"])).exit_code == 2
    assert len(api.get("/tasks", params={"status": "dead", "app": app["id"]}).json()["items"]) == 3

    retried = ok(cli("tasks", "retry", "--app", str(app["name"]), "--all")).stdout
    assert retried.strip() == f"3 task(s) of {app['name']} queued again"
    eventually(lambda: len(api.get(f"/apps/{app['id']}/accounts").json()["items"]) == 3, timeout=60)
    assert api.get("/tasks", params={"status": "dead", "app": app["id"]}).json()["items"] == []
    again = ok(cli("tasks", "retry", "--app", str(app["name"]), "--all")).stdout
    assert again.strip() == f"{app['name']} has no dead tasks"
    logged = api.get("/logs", params={"action": "task.retry", "app": app["id"]}).json()["items"]
    assert "retried the 3 dead task(s)" in logged[-1]["message"]


def test_the_bulk_retry_endpoint_refuses_bad_input_as_problems(api: httpx.Client) -> None:
    for app, status in (("no-such-app", 404), ("x" * 300, 404)):
        answer = api.post(f"/apps/{app}/tasks/retry")
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_an_app_admin_cannot_retry_the_tasks_of_another_app(
    server: str, api: httpx.Client, runtime: Runtime, faulty: tuple[FaultyTarget, str]  # noqa: F811
) -> None:
    target, base = faulty
    app, _ = dead_tasks_after_an_outage(api, target, base, 1)
    with runtime.db.session() as session:
        other = tokens.create_token(session, SYSTEM, "other", "app_admin", apps=())
    answer = httpx.post(f"{server}/api/v1/apps/{app['name']}/tasks/retry",
                        headers={"Authorization": f"Bearer {other}"})
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert len(api.get("/tasks", params={"status": "dead", "app": app["id"]}).json()["items"]) == 1
