"""Tasks: failed and dead tasks, with retry and dismiss."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from provisiond.authz import Action
from provisiond.services import apps as app_service
from provisiond.services import tasks
from provisiond.services.directory import find_users_by_ids
from provisiond.services.monitoring import app_names
from provisiond.store.tables import Group, Task
from provisiond.web.confirm import Confirmation, ask, confirmed
from provisiond.web.context import Console, ConsoleDep, PostDep, redirect, render

router = APIRouter()
SHOWN = ("dead", "queued", "running", "dismissed", "succeeded")


@router.get("/tasks")
def list_tasks(console: ConsoleDep, status: str = "dead") -> Response:
    console.authorize(Action.TASK_READ)
    status = status if status in SHOWN else "dead"
    with console.rt.db.session() as session:
        rows = [
            row
            for row in tasks.list_tasks(session, status=status, app_id=None, limit=200)
            if console.may(Action.TASK_READ, row.app_id)
        ]
        users = {
            uid: user.login
            for uid, user in find_users_by_ids(
                session, sorted({row.subject_id for row in rows if row.kind == "user"})
            ).items()
        }
        group_ids = sorted({row.subject_id for row in rows if row.kind == "group"})
        groups = {
            g.id: g.name for g in session.scalars(select(Group).where(Group.id.in_(group_ids)))
        }
        apps = app_names(session)
        # Per app, how many are dead: the "Retry all" buttons, after an outage.
        dead = {
            app_id: count
            for app_id, count in session.execute(
                select(Task.app_id, func.count())
                .where(Task.status == "dead")
                .group_by(Task.app_id)
            )
            if status == "dead" and console.may(Action.TASK_RETRY, app_id)
        }
    return render(
        console.request,
        "tasks.html",
        tasks=rows,
        users=users,
        groups=groups,
        apps=apps,
        status=status,
        statuses=SHOWN,
        dead=dead,
    )


@router.post("/tasks/{task_id}/retry")
def retry(task_id: str, console: PostDep) -> Response:
    with console.rt.db.session() as session:
        console.authorize(Action.TASK_RETRY, tasks.get_task(session, task_id).app_id)
        tasks.retry_task(session, console.actor, task_id)
    console.flash(f"Task {task_id[:8]} queued again.")
    return redirect(console.request, "/tasks?status=dead")


@router.post("/tasks/apps/{app_id}/retry")
def retry_app(app_id: str, console: PostDep) -> Response:
    with console.rt.db.session() as session:
        app = app_service.get_app(session, app_id)
        console.authorize(Action.TASK_RETRY, app.id)
        retried = tasks.retry_dead(session, console.actor, app)
        name = app.name
    console.flash(f"{len(retried)} task(s) of {name} queued again.")
    return redirect(console.request, "/tasks?status=dead")


@router.post("/tasks/{task_id}/dismiss")
def dismiss(task_id: str, console: PostDep) -> Response:
    with console.rt.db.session() as session:
        task = tasks.get_task(session, task_id)
        console.authorize(Action.TASK_DISMISS, task.app_id)
        if not confirmed(console):
            return _confirm_dismiss(console, session, task)
        tasks.dismiss_task(session, console.actor, task_id)
    console.flash(f"Task {task_id[:8]} dismissed.")
    return redirect(console.request, "/tasks?status=dead")


def _confirm_dismiss(console: Console, session: Session, task: Task) -> Response:
    app = app_names(session).get(task.app_id, task.app_id)
    if task.kind == "group":
        group = session.get(Group, task.subject_id)
        who = f"group {group.name if group else task.subject_id}"
    else:
        user = find_users_by_ids(session, [task.subject_id]).get(task.subject_id)
        who = user.login if user else task.subject_id
    what = task.operation or task.reason
    return ask(
        console,
        Confirmation(
            title=f"Dismiss the task for {who} in {app}?",
            summary=f"The {what} of {who} in {app} is not retried: {app} is left as it is now, "
            "out of step with the directory until the next change or full sync.",
            action=f"/tasks/{task.id}/dismiss",
            button="Dismiss task",
            back="/tasks?status=dead",
            details=(f"Last error: {task.last_error}",) if task.last_error else (),
        ),
    )
