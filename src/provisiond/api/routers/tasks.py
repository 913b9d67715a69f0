from __future__ import annotations

from fastapi import APIRouter, Query

from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.schemas import Page, TaskOut
from provisiond.services import apps, tasks

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("")
def list_tasks(
    rt: RuntimeDep,
    _: AdminDep,
    status: str | None = Query(default=None, pattern="^(" + "|".join(tasks.STATUSES) + ")$"),
    app: str | None = Query(default=None, description="App id or name"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> Page[TaskOut]:
    with rt.db.session() as session:
        app_id = apps.get_app(session, app).id if app else None
        rows = tasks.list_tasks(session, status=status, app_id=app_id, limit=limit)
        return Page[TaskOut](items=[TaskOut.of(row) for row in rows])


@router.get("/{task_id}")
def get_task(task_id: str, rt: RuntimeDep, _: AdminDep) -> TaskOut:
    with rt.db.session() as session:
        return TaskOut.of(tasks.get_task(session, task_id))


@router.post("/{task_id}/retry")
def retry_task(task_id: str, rt: RuntimeDep, actor: AdminDep) -> TaskOut:
    with rt.db.session() as session:
        return TaskOut.of(tasks.retry_task(session, actor, task_id))


@router.post("/{task_id}/dismiss")
def dismiss_task(task_id: str, rt: RuntimeDep, actor: AdminDep) -> TaskOut:
    with rt.db.session() as session:
        return TaskOut.of(tasks.dismiss_task(session, actor, task_id))
