"""Admin view of the task queue: list, retry, dismiss."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.engine import queue
from provisiond.errors import Conflict, NotFound
from provisiond.services import activity
from provisiond.services.context import Actor
from provisiond.store.tables import App, Task, utcnow

STATUSES = ("queued", "running", "succeeded", "dead", "dismissed", "superseded")


def list_tasks(
    session: Session, *, status: str | None, app_id: str | None, limit: int
) -> Sequence[Task]:
    statement = select(Task)
    if status:
        statement = statement.where(Task.status == status)
    if app_id:
        statement = statement.where(Task.app_id == app_id)
    return session.scalars(statement.order_by(Task.updated_at.desc()).limit(limit)).all()


def get_task(session: Session, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"no task with id {task_id!r}")
    return task


def retry_task(session: Session, actor: Actor, task_id: str) -> Task:
    task = get_task(session, task_id)
    if task.status != queue.DEAD:
        raise Conflict(
            f"only dead tasks can be retried; this one is {task.status}", current_status=task.status
        )
    pending = session.scalar(
        select(Task).where(
            Task.app_id == task.app_id, Task.subject_id == task.subject_id, Task.status == queue.QUEUED
        )
    )
    activity.record(
        session,
        actor,
        "task.retry",
        f"retried task {task.id} ({task.operation or task.reason})",
        app_id=task.app_id,
        user_id=task.subject_id if task.kind == "user" else None,
        targets=_targets(task),
        correlation_id=task.correlation_id,
    )
    if pending is not None:
        # A newer task already reconciles this account: make it due now and let it carry on.
        task.status = queue.SUPERSEDED
        task.updated_at = utcnow()
        pending.next_attempt_at = utcnow()
        session.info["tasks_enqueued"] = True
        return pending
    task.run_id = None  # its run already counted it as failed
    queue.retry(session, [task.id])
    session.refresh(task)
    return task


def retry_dead(session: Session, actor: Actor, app: App) -> list[Task]:
    """Retry every dead task of an app at once, after an outage: what ``retry_task`` does to
    each, newest first, in one transaction and one activity event. The tasks now queued (a
    dead task whose account a newer queued task already reconciles hands over to that one)."""
    dead = session.scalars(
        select(Task)
        .where(Task.app_id == app.id, Task.status == queue.DEAD)
        .order_by(Task.updated_at.desc(), Task.id)
    ).all()
    if not dead:
        return []
    pending = {
        task.subject_id: task
        for task in session.scalars(
            select(Task).where(Task.app_id == app.id, Task.status == queue.QUEUED)
        )
    }
    now = utcnow()
    again: list[Task] = []
    queued: dict[str, Task] = {}
    for task in dead:
        newer = pending.get(task.subject_id)
        if newer is not None:  # as in retry_task; an older dead task hands over to the newest
            task.status, task.updated_at = queue.SUPERSEDED, now
            newer.next_attempt_at = now
            queued[newer.id] = newer
            continue
        task.run_id = None  # its run already counted it as failed
        again.append(task)
        pending[task.subject_id] = task
        queued[task.id] = task
    session.info["tasks_enqueued"] = True
    if again:
        queue.retry(session, [task.id for task in again])
        for task in again:
            session.refresh(task)
    activity.record(
        session,
        actor,
        "task.retry",
        f"retried the {len(dead)} dead task(s) of {app.name} at once",
        app_id=app.id,
        targets={"app": app.name},
        details={"retried": len(dead), "queued": len(queued)},
    )
    return list(queued.values())


def dismiss_task(session: Session, actor: Actor, task_id: str) -> Task:
    task = get_task(session, task_id)
    if task.status != queue.DEAD:
        raise Conflict(
            f"only dead tasks can be dismissed; this one is {task.status}",
            current_status=task.status,
        )
    task.status = queue.DISMISSED
    task.updated_at = utcnow()
    activity.record(
        session,
        actor,
        "task.dismiss",
        f"dismissed task {task.id} ({task.operation or task.reason}); last error: {task.last_error}",
        app_id=task.app_id,
        user_id=task.subject_id if task.kind == "user" else None,
        targets=_targets(task),
        correlation_id=task.correlation_id,
    )
    return task


def _targets(task: Task) -> dict[str, str]:
    if task.kind == "group":
        return {"task_id": task.id, "group_id": task.subject_id}
    return {"task_id": task.id}
