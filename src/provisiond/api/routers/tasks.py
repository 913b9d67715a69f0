from __future__ import annotations

from fastapi import APIRouter, Query

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import Page, TaskOut
from provisiond.authz import Action, may
from provisiond.services import apps, tasks

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("", dependencies=[requires(Action.TASK_READ)], responses=declare(404))
def list_tasks(
    rt: RuntimeDep,
    actor: AdminDep,
    status: str | None = Query(default=None, pattern="^(" + "|".join(tasks.STATUSES) + ")$"),
    app: str | None = Query(default=None, description="App id or name"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> Page[TaskOut]:
    """Queued, running, failed and dead tasks (404 for an ``app`` that names none)."""
    with rt.db.session() as session:
        app_id = apps.get_app(session, app).id if app else None
        rows = tasks.list_tasks(session, status=status, app_id=app_id, limit=limit)
        rows = [row for row in rows if may(actor, Action.TASK_READ, row.app_id)]
        return Page[TaskOut](items=[TaskOut.of(row) for row in rows])


@router.get("/{task_id}", dependencies=[requires(Action.TASK_READ)], responses=declare(404))
def get_task(task_id: str, rt: RuntimeDep, _: AdminDep) -> TaskOut:
    """One task: its attempts, next attempt and last error."""
    with rt.db.session() as session:
        return TaskOut.of(tasks.get_task(session, task_id))


@router.post(
    "/{task_id}/retry", dependencies=[requires(Action.TASK_RETRY)], responses=declare(404, 409)
)
def retry_task(task_id: str, rt: RuntimeDep, actor: AdminDep) -> TaskOut:
    """Queue a dead task again, now (409 for any other status)."""
    with rt.db.session() as session:
        return TaskOut.of(tasks.retry_task(session, actor, task_id))


@router.post(
    "/{task_id}/dismiss", dependencies=[requires(Action.TASK_DISMISS)], responses=declare(404, 409)
)
def dismiss_task(task_id: str, rt: RuntimeDep, actor: AdminDep) -> TaskOut:
    """Give up on a dead task: it is kept, out of the way (409 for any other status)."""
    with rt.db.session() as session:
        return TaskOut.of(tasks.dismiss_task(session, actor, task_id))
