"""Every API route and every console page, for every admin role: allowed, 403, or 401.

Routes are enumerated (the OpenAPI document, the console's router), not listed by hand. The
expected answer comes from the action each route declares and ``provisiond.authz``; the policy
itself is pinned in tests/test_authz.py. An app_admin is tried on a granted and on another app.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from provisiond import authz
from provisiond.api import create_app
from provisiond.api.authorization import declared_action
from provisiond.authz import Action
from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.runtime import Runtime
from provisiond.services import apps, tokens
from provisiond.services.context import ROLES, SYSTEM, Actor
from provisiond.store.tables import Run, Task
from provisiond.web import create_console
from tests.support.servers import free_port
from tests.web.conftest import MakeAdmin, csrf_of, sign_in

FAKE = "00000000-0000-0000-0000-000000000000"
PARAM = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class World:
    granted: dict[str, str]  # param name -> id, in the app an app_admin manages
    other: dict[str, str]  # ... in an app it does not


def _app_with_records(runtime: Runtime, name: str) -> dict[str, str]:
    with runtime.db.session() as session:
        app = apps.create_app(
            session,
            SYSTEM,
            runtime.vault,
            name=name,
            label=name,
            connector=ScimConnectorSettings(base_url=f"http://127.0.0.1:{free_port()}/scim"),
            provisioning=ProvisioningSettings(),
        )
        run = Run(app_id=app.id, kind="full", status="succeeded", actor="t", total=0, counts={})
        task = Task(app_id=app.id, subject_id=FAKE, reason="t", status="dead", correlation_id=FAKE)
        session.add_all([run, task])
        session.flush()
        return {"app_id": app.id, "run_id": run.id, "task_id": task.id}


@pytest.fixture
def world(runtime: Runtime) -> World:
    return World(_app_with_records(runtime, "granted"), _app_with_records(runtime, "other"))


def _path(template: str, ids: dict[str, str]) -> str:
    values = {"action": "activate", **ids}
    return PARAM.sub(lambda m: values.get(m.group(1), FAKE), template)


def _expected(role: str, action: Action | None, grants: frozenset[str], app_id: str | None) -> bool:
    if action is None:  # a route that declares nothing is super_admin's alone (fail closed)
        return role == "super_admin"
    return authz.may(Actor("t", role=role, grants=grants), action, app_id)


def _cases(
    template: str, role: str, action: Action | None, world: World
) -> Iterator[tuple[str, bool]]:
    """(path, allowed) pairs: fake ids, or for an app_admin the granted and the other app."""
    names = set(PARAM.findall(template))
    scoped = role == "app_admin" and names & {"app_id", "run_id", "task_id"}
    grants = frozenset({world.granted["app_id"]})
    if not scoped:
        yield _path(template, {}), _expected(role, action, grants, None)
        return
    for ids in (world.other, world.granted):
        yield _path(template, ids), _expected(role, action, grants, ids["app_id"])


def _flat(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, set[str], APIRoute]]:
    """(full path, methods, route) of every FastAPI route, through included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.path, route.methods, route
        elif hasattr(route, "effective_route_contexts"):  # FastAPI's included router
            for context in route.effective_route_contexts():
                if isinstance(context.original_route, APIRoute):
                    yield context.path, context.methods, context.original_route


def _api_routes(runtime: Runtime) -> list[tuple[str, str, Action | None]]:
    app = create_app(runtime=runtime, start_worker=False)
    routes = [
        (method, path, declared_action(route))
        for path, methods, route in _flat(app.routes)
        if path.startswith(("/api/v1", "/metrics"))
        for method in sorted(methods)
    ]
    assert len(routes) >= 40, routes
    return routes


def test_every_api_route_answers_each_role_as_the_policy_says(
    server: str, runtime: Runtime, world: World
) -> None:
    with runtime.db.session() as session:
        secrets = {
            role: tokens.create_token(
                session, SYSTEM, role, role, apps=["granted"] if role == "app_admin" else ()
            )
            for role in ROLES
        }
    checked = 0
    with httpx.Client(base_url=server, timeout=30) as client:
        # super_admin last: its allowed requests may change what the others would see.
        for role in sorted(ROLES, key=lambda r: r == "super_admin"):
            headers = {"Authorization": f"Bearer {secrets[role]}"}
            for method, template, action in _api_routes(runtime):
                for path, allowed in _cases(template, role, action, world):
                    answer = client.request(method, path, headers=headers, json={})
                    checked += 1
                    if allowed:
                        assert answer.status_code not in (401, 403), (
                            role,
                            method,
                            path,
                            answer.text,
                        )
                    else:
                        assert answer.status_code == 403, (role, method, path, answer.text)
                        assert answer.headers["content-type"] == "application/problem+json"
                        assert answer.json()["type"].endswith("/forbidden")
            assert client.get("/metrics").status_code == 401
    assert checked > 150


def test_an_app_admin_sees_only_its_apps_in_lists(
    api: httpx.Client, server: str, runtime: Runtime, world: World
) -> None:
    with runtime.db.session() as session:
        token = tokens.create_token(session, SYSTEM, "scoped", "app_admin", apps=["granted"])
    scoped = {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{server}/api/v1/apps", headers=scoped).json()["items"]
    assert [app["name"] for app in listed] == ["granted"]
    assert {a["name"] for a in api.get("/apps").json()["items"]} == {"granted", "other"}
    dead = httpx.get(f"{server}/api/v1/tasks", params={"status": "dead"}, headers=scoped).json()
    assert {t["app_id"] for t in dead["items"]} == {world.granted["app_id"]}


# -- the console ---------------------------------------------------------------------------------

# Every console page and form, and the action it takes. A new page must be added here.
CONSOLE: dict[tuple[str, str], Action] = {
    ("GET", "/"): Action.APP_READ,
    ("GET", "/apps"): Action.APP_READ,
    ("GET", "/apps/new"): Action.APP_CREATE,
    ("POST", "/apps/new"): Action.APP_CREATE,
    ("GET", "/apps/{app_id}"): Action.APP_READ,
    **{
        ("GET", f"/apps/{{app_id}}/{tab}"): Action.APP_READ
        for tab in (
            "provisioning", "roles", "push-groups", "assignments", "policy", "accounts", "activity"
        )
    },
    **{
        ("POST", f"/apps/{{app_id}}/{form}"): Action.APP_MANAGE
        for form in (
            "connector", "test", "provisioning", "sync", "roles", "push-groups", "assignments",
            "policy", "import", "matches", "orphans",
        )
    },
    ("POST", "/apps/{app_id}/roles/{role_id}/delete"): Action.APP_MANAGE,
    ("GET", "/apps/{app_id}/roles/{role_id}/edit"): Action.APP_MANAGE,
    ("POST", "/apps/{app_id}/roles/{role_id}/edit"): Action.APP_MANAGE,
    ("POST", "/apps/{app_id}/assignments/{assignment_id}/delete"): Action.APP_MANAGE,
    ("POST", "/apps/{app_id}/push-groups/{group_id}/sync"): Action.APP_MANAGE,
    ("POST", "/apps/{app_id}/push-groups/{group_id}/unpush"): Action.APP_MANAGE,
    ("POST", "/apps/{app_id}/delete"): Action.APP_DELETE,
    ("GET", "/directory"): Action.DIRECTORY_READ,
    ("GET", "/directory/users"): Action.DIRECTORY_READ,
    ("GET", "/directory/users/{user_id}"): Action.DIRECTORY_READ,
    ("GET", "/directory/users/new"): Action.DIRECTORY_WRITE,
    ("POST", "/directory/users/new"): Action.DIRECTORY_WRITE,
    ("POST", "/directory/users/{user_id}/lifecycle/{action}"): Action.USER_LIFECYCLE,
    ("GET", "/directory/users/{user_id}/edit"): Action.DIRECTORY_WRITE,
    ("POST", "/directory/users/{user_id}/edit"): Action.DIRECTORY_WRITE,
    ("POST", "/directory/users/{user_id}/delete"): Action.DIRECTORY_WRITE,
    ("GET", "/directory/groups"): Action.DIRECTORY_READ,
    ("POST", "/directory/groups"): Action.DIRECTORY_WRITE,
    ("GET", "/directory/groups/{group_id}"): Action.DIRECTORY_READ,
    ("POST", "/directory/groups/{group_id}/members"): Action.DIRECTORY_WRITE,
    ("POST", "/directory/groups/{group_id}/members/{user_id}/remove"): Action.DIRECTORY_WRITE,
    ("POST", "/directory/groups/{group_id}/rule"): Action.DIRECTORY_WRITE,
    ("POST", "/directory/groups/{group_id}/children"): Action.DIRECTORY_WRITE,
    ("POST", "/directory/groups/{group_id}/children/{child_id}/remove"): Action.DIRECTORY_WRITE,
    ("GET", "/runs"): Action.APP_READ,
    ("GET", "/runs/{run_id}"): Action.APP_READ,
    ("POST", "/runs/{run_id}/approve"): Action.APP_MANAGE,
    ("POST", "/runs/{run_id}/cancel"): Action.APP_MANAGE,
    ("GET", "/tasks"): Action.TASK_READ,
    ("POST", "/tasks/{task_id}/retry"): Action.TASK_RETRY,
    ("POST", "/tasks/apps/{app_id}/retry"): Action.TASK_RETRY,
    ("POST", "/tasks/{task_id}/dismiss"): Action.TASK_DISMISS,
    ("GET", "/activity"): Action.LOG_READ,
    ("GET", "/activity/tail"): Action.LOG_READ,
    ("GET", "/access"): Action.ADMIN_MANAGE,
    ("POST", "/access/tokens"): Action.ADMIN_MANAGE,
    ("POST", "/access/tokens/{token_id}/revoke"): Action.ADMIN_MANAGE,
    **{
        ("POST", f"/access/admins/{{admin_id}}/{form}"): Action.ADMIN_MANAGE
        for form in ("role", "disable", "enable", "unlock", "password", "delete")
    },
    ("GET", "/activity/{event_id}"): Action.LOG_READ,
    ("GET", "/workers"): Action.METRICS_READ,
    ("POST", "/apps/{app_id}/provisioning/resume"): Action.APP_MANAGE,
    ("GET", "/directory/users/{user_id}/receipt"): Action.DIRECTORY_READ,
    ("GET", "/directory/users/{user_id}/receipt.json"): Action.DIRECTORY_READ,
    ("GET", "/posture"): Action.DIRECTORY_READ,
    ("GET", "/posture.csv"): Action.DIRECTORY_READ,
}
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout")}  # tested in tests/web


def _console_routes(runtime: Runtime) -> list[tuple[str, str]]:
    console = create_console(runtime)
    return [
        (method, path) for path, methods, _ in _flat(console.routes) for method in sorted(methods)
    ]


def test_every_console_page_is_in_the_table(runtime: Runtime) -> None:
    assert set(_console_routes(runtime)) == set(CONSOLE) | PUBLIC


def test_every_console_page_answers_each_role_as_the_policy_says(
    server: str, runtime: Runtime, world: World, make_admin: MakeAdmin
) -> None:
    for role in ROLES:
        make_admin(role.replace("_", "-"), role, ["granted"] if role == "app_admin" else ())
    routes = [route for route in _console_routes(runtime) if route not in PUBLIC]
    for role in sorted(ROLES, key=lambda r: r == "super_admin"):
        with sign_in(server, role.replace("_", "-")) as client:
            token = csrf_of(client.get("/").text)
            for method, template in routes:
                action = CONSOLE[(method, template)]
                # The console has no fake ids to hide behind: it acts on the other app when
                # the role is not scoped, so a forbidden form is a 403 and not a 404.
                for path, allowed in _console_cases(template, role, action, world):
                    answer = client.request(
                        method, path, data={"csrf_token": token} if method == "POST" else None
                    )
                    where = (role, method, path, answer.status_code, answer.text[:300])
                    if allowed:
                        assert answer.status_code != 403, where
                        assert "/login" not in answer.headers.get("location", ""), where
                    else:
                        assert answer.status_code == 403, where
                        assert "may not" in answer.text, where
    with httpx.Client(base_url=server) as anonymous:  # the console's 401: go and sign in
        for method, template in routes:
            answer = anonymous.request(method, _path(template, world.other))
            assert answer.status_code == 303, (method, template)
            assert answer.headers["location"].startswith("/login?next=")


def _console_cases(
    template: str, role: str, action: Action, world: World
) -> Iterator[tuple[str, bool]]:
    grants = frozenset({world.granted["app_id"]})
    if role == "app_admin" and "{" in template:
        for ids in (world.other, world.granted):
            yield _path(template, ids), _expected(role, action, grants, ids["app_id"])
        return
    yield _path(template, world.other), _expected(role, action, grants, None)
