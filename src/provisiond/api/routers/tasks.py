from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import PROBLEM_JSON
from provisiond.api.schemas import Page, TaskOut, TasksRetry
from provisiond.authz import Action, authorize, may
from provisiond.services import apps, tasks

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("", dependencies=[requires(Action.TASK_READ)])
def list_tasks(
    rt: RuntimeDep,
    actor: AdminDep,
    status: str | None = Query(default=None, pattern="^(" + "|".join(tasks.STATUSES) + ")$"),
    app: str | None = Query(default=None, description="App id or name"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> Page[TaskOut]:
    with rt.db.session() as session:
        app_id = apps.get_app(session, app).id if app else None
        rows = tasks.list_tasks(session, status=status, app_id=app_id, limit=limit)
        rows = [row for row in rows if may(actor, Action.TASK_READ, row.app_id)]
        return Page[TaskOut](items=[TaskOut.of(row) for row in rows])


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {}}}


@router.post(
    "/retry",
    dependencies=[requires(Action.TASK_RETRY)],
    responses={
        403: _problem("The token's role may not retry tasks of this app."),
        404: _problem("No app with that id or name."),
        422: _problem("The body is not {\"app\": \"<id or name>\"}."),
    },
)
def retry_dead_tasks(body: TasksRetry, rt: RuntimeDep, actor: AdminDep) -> Page[TaskOut]:
    """Retry every dead task of an app at once (after an outage); the tasks now queued."""
    with rt.db.session() as session:
        app = apps.get_app(session, body.app)
        # The app is in the body, not the path: the scoped check is made here.
        authorize(actor, Action.TASK_RETRY, app.id)
        return Page[TaskOut](items=[TaskOut.of(t) for t in tasks.retry_dead(session, actor, app)])


@router.get("/{task_id}", dependencies=[requires(Action.TASK_READ)])
def get_task(task_id: str, rt: RuntimeDep, _: AdminDep) -> TaskOut:
    with rt.db.session() as session:
        return TaskOut.of(tasks.get_task(session, task_id))


@router.post("/{task_id}/retry", dependencies=[requires(Action.TASK_RETRY)])
def retry_task(task_id: str, rt: RuntimeDep, actor: AdminDep) -> TaskOut:
    with rt.db.session() as session:
        return TaskOut.of(tasks.retry_task(session, actor, task_id))


@router.post("/{task_id}/dismiss", dependencies=[requires(Action.TASK_DISMISS)])
def dismiss_task(task_id: str, rt: RuntimeDep, actor: AdminDep) -> TaskOut:
    with rt.db.session() as session:
        return TaskOut.of(tasks.dismiss_task(session, actor, task_id))
