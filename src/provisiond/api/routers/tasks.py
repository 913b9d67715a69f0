from __future__ import annotations

from fastapi import APIRouter, Query

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.schemas import Page, TaskOut
from provisiond.authz import Action, may
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
