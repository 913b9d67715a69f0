"""Role checks for the REST API: each route declares the action it takes (``requires``).

A route that declares nothing is refused to every role but super_admin (``require_declared``
runs on all of /api/v1), so a new endpoint is never open by accident. The app a request acts
on is read from the path (``app_id``, or the app of ``run_id`` / ``task_id``) only when the
role is scoped to granted apps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from provisiond import authz
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.authz import Action
from provisiond.runtime import Runtime
from provisiond.services import apps, runs, tasks
from provisiond.services.context import Actor


class Requires:
    """The dependency that checks one action; its ``action`` is what the route declares."""

    def __init__(self, action: Action) -> None:
        self.action = action

    def __repr__(self) -> str:
        return f"Requires({self.action.value!r})"

    def __call__(self, request: Request, rt: RuntimeDep, actor: AdminDep) -> Actor:
        authz.authorize(actor, self.action)
        if authz.is_scoped(actor) and self.action in authz.APP_SCOPED:
            app_id = app_in_path(rt, request.path_params)
            if app_id is not None:
                authz.authorize(actor, self.action, app_id)
        return actor


def requires(action: Action) -> Any:
    """``@router.get(..., dependencies=[requires(Action.APP_READ)])``."""
    return Depends(Requires(action))


def declared_action(route: APIRoute) -> Action | None:
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, Requires):
            return dependency.call.action
    return None


def require_declared(request: Request, actor: AdminDep) -> None:
    """Fail closed: only super_admin may use a route that declares no action."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and declared_action(route) is None:
        authz.authorize(actor, Action.ADMIN_MANAGE)


def app_in_path(rt: Runtime, params: Mapping[str, Any]) -> str | None:
    """The id of the app a request acts on, if its path names one (404 if it names nothing)."""
    with rt.db.session() as session:
        if "app_id" in params:
            return apps.get_app(session, str(params["app_id"])).id
        if "run_id" in params:
            return runs.get_run(session, str(params["run_id"])).app_id
        if "task_id" in params:
            return tasks.get_task(session, str(params["task_id"])).app_id
    return None
