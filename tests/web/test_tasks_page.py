"""The console's Tasks page names whom each failed task was for (user or pushed group); the
Workers page shows the worker processes."""

from __future__ import annotations

import os

import httpx

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Profile
from provisiond.runtime import Runtime
from provisiond.services import apps, directory
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Task
from tests.e2e.conftest import eventually


def test_a_dead_task_shows_the_login_of_its_user_and_the_name_of_its_group(
    console: httpx.Client, runtime: Runtime
) -> None:
    with runtime.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, runtime.vault, name="tasks-page", label="Tasks page",
            connector=ScimConnectorSettings(
                base_url="http://127.0.0.1:9/v2", auth={"type": "bearer", "token": "t"}
            ),
            provisioning=ProvisioningSettings(),
        )
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
