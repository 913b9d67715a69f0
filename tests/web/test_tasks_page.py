"""The console's Tasks page names whom each failed task was for (user or pushed group); the
Workers page shows the worker processes."""

from __future__ import annotations

import os

import httpx
from sqlalchemy.orm import Session

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Profile
from provisiond.engine import quarantine
from provisiond.runtime import Runtime
from provisiond.services import apps, directory
from provisiond.services.context import SYSTEM
from provisiond.store.tables import App, Task
from tests.cli.conftest import flat
from tests.e2e.conftest import (
    eventually,
    faulty,  # noqa: F401 - a fixture
)
from tests.support.faulty import FaultyTarget
from tests.support.outage import dead_tasks_after_an_outage
from tests.web.conftest import csrf_of


def an_app(session: Session, runtime: Runtime, name: str, label: str) -> App:
    """An app whose target is never reached: the console pages alone are under test."""
    return apps.create_app(
        session, SYSTEM, runtime.vault, name=name, label=label,
        connector=ScimConnectorSettings(
            base_url="http://127.0.0.1:9/v2", auth={"type": "bearer", "token": "t"}
        ),
        provisioning=ProvisioningSettings(),
    )


def test_a_dead_task_shows_the_login_of_its_user_and_the_name_of_its_group(
    console: httpx.Client, runtime: Runtime
) -> None:
    with runtime.db.session() as session:
        app = an_app(session, runtime, "tasks-page", "Tasks page")
        user = directory.create_user(
            session, SYSTEM,
            Profile(login="grace.hopper", email="grace@example.org", firstName="G", lastName="H"),
            activate=True,
        )
        group = directory.create_group(session, SYSTEM, "Compilers", None)
        for kind, subject in (("user", user.id), ("group", group.id)):
            session.add(Task(app_id=app.id, kind=kind, subject_id=subject, reason="t",
                             status="dead", correlation_id="c", last_error="HTTP 400"))
        user_id, group_id = user.id, group.id
    page = console.get("/tasks", params={"status": "dead"})
    assert page.status_code == 200
    assert f'href="/directory/users/{user_id}">grace.hopper</a>' in page.text
    assert f'href="/directory/groups/{group_id}">Compilers</a>' in page.text


def test_the_workers_page_shows_the_servers_worker_beating(console: httpx.Client) -> None:
    def listed() -> httpx.Response | None:
        page = console.get("/workers")
        return page if page.status_code == 200 and f"<td>{os.getpid()}</td>" in page.text else None

    page = eventually(listed, 30)
    assert 'badge badge-running">running<' in page.text
    assert 'href="/workers"' in page.text  # in the navigation


def test_the_console_retries_every_dead_task_of_an_app(
    console: httpx.Client, api: httpx.Client, faulty: tuple[FaultyTarget, str]  # noqa: F811
) -> None:
    target, base = faulty
    app, _ = dead_tasks_after_an_outage(api, target, base, 2)
    page = console.get("/tasks", params={"status": "dead"})
    assert f"Retry all 2 dead tasks of {app['name']}" in flat(page.text)
    done = console.post(f"/tasks/apps/{app['id']}/retry", data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303, done.text
    shown = console.get(done.headers["location"])
    assert f"2 task(s) of {app['name']} queued again." in shown.text
    eventually(lambda: len(api.get(f"/apps/{app['id']}/accounts").json()["items"]) == 2, timeout=60)


def test_a_quarantined_app_says_so_on_its_tabs_and_resumes_from_the_console(
    console: httpx.Client, runtime: Runtime
) -> None:
    with runtime.db.session() as session:
        app = an_app(session, runtime, "held-app", "Held app")
        quarantine.enter(session, app.id, "the app refused credentials that worked before",
                         correlation_id="c")
        app_id = app.id
    page = console.get(f"/apps/{app_id}/assignments")
    assert "Quarantined" in page.text and "refused credentials that worked before" in page.text
    done = console.post(f"/apps/{app_id}/provisioning/resume",
                        data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303, done.text
    shown = console.get(done.headers["location"])
    assert "Held app resumes" in shown.text and "Quarantined" not in shown.text
