"""Dry runs and provisioning on demand: what a policy would do, and doing it for one user now."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisiond.domain.policy import PolicyDocument
from provisiond.engine import queue
from provisiond.engine.worker import Worker
from provisiond.errors import Conflict
from provisiond.runtime import Runtime
from provisiond.services import activity, planning, policies, policy_saves
from provisiond.services.apps import get_app, provisioning_of
from provisiond.services.context import Actor
from provisiond.services.directory import get_user
from provisiond.store.tables import Task, new_id, utcnow

WAIT_FOR_RUNNING = 10.0  # seconds an on-demand request waits for a worker already on the key


def preview(
    session: Session,
    actor: Actor,
    app_id: str,
    draft: PolicyDocument | None,
    *,
    limit: int = 1000,
) -> dict[str, Any]:
    """The exact plan the engine would run for the whole app, from the records.

    Nothing is written but the ``app.policy.preview`` event, and nothing is sent to the app.
    """
    app = get_app(session, app_id)
    settings = provisioning_of(app)
    if draft is not None:
        policy = policies.check(session, draft)
        version = None
    else:
        policy = policies.compiled(session, app.id)
        version = policy.version or 0
    result = planning.plan_app(session, app.id, policy, settings, now=utcnow())
    counts = result.counts
    limits = policy.document.limits
    if draft is not None:  # saving it is checked against the limits in force too
        limits = policies.compiled(session, app.id).document.limits.tighter(limits)
    deprovisions = counts["deactivate"] + counts["delete"]
    held = not limits.allows(deprovisions, result.accounts)
    changed = [u for u in result.users if u.operation is not None or u.error is not None]
    activity.record(
        session,
        actor,
        "app.policy.preview",
        f"previewed {'a draft policy' if draft is not None else f'policy version {version}'} of "
        f"{app.name}: "
        + ", ".join(f"{n} {k}" for k, n in counts.items() if n and k != "unchanged")
        + (" (nothing to do)" if not changed else ""),
        app_id=app.id,
        targets={"app": app.name},
        details={"counts": counts, "draft": draft is not None},
    )
    return {
        "app_id": app.id,
        "policy_version": version,
        "provisioning_enabled": settings.enabled,
        "counts": counts,
        "users_considered": len(result.users),
        "accounts": result.accounts,
        "would_hold": held,
        # Previews plan the version in force; a save waiting for approval is shown beside it.
        "pending": policy_saves.pending_of(session, app.id),
        "limits": limits.model_dump(),
        "changes": [planning.describe(u) for u in changed[:limit]],
        "truncated": len(changed) > limit,
    }


async def provision_now(rt: Runtime, actor: Actor, app_id: str, user_id: str) -> dict[str, Any]:
    """Reconcile one user in one app now, reading the app first, and return every step."""
    deadline = time.monotonic() + WAIT_FOR_RUNNING
    while True:
        try:
            with rt.db.session() as session:
                app = get_app(session, app_id)
                user = get_user(session, user_id)
                app_id, login = app.id, user.login
                if not provisioning_of(app).enabled:
                    raise Conflict(f"provisioning is disabled for {app.name}: enable it first")
                task_id = _claim_key(session, actor, app.id, user.id)
                activity.record(
                    session,
                    actor,
                    "app.user.provision_on_demand",
                    f"provisioning {login} in {app.name} on demand",
                    app_id=app.id,
                    user_id=user.id,
                    targets={"app": app.name, "user": login},
                )
            break
        except _Busy:
            if time.monotonic() > deadline:
                raise Conflict(
                    "a reconcile of this user in this app is still running; try again in a moment"
                ) from None
            await asyncio.sleep(0.05)
    # Its own worker: the in-process one lives on another event loop.
    worker = Worker(rt.db, rt.settings, rt.vault, transport=rt.transport, capacity=1)
    try:
        result = await worker.execute(task_id)
    finally:
        await worker.aclose()
    assert result is not None
    with rt.db.session() as session:
        task = session.get(Task, task_id)
        status = task.status if task else None
    operation = result.operation
    return {
        "app_id": app_id,
        "user_id": user_id,
        "login": login,
        "outcome": result.outcome,
        "operation": operation.describe() if operation else None,
        "task_id": task_id,
        "task_status": status,
        "remote_id": result.account.remote_id if result.account else None,
        "trace": result.trace,
    }


class _Busy(Exception):
    """A worker is reconciling this key right now."""


def _claim_key(session: Session, actor: Actor, app_id: str, user_id: str) -> str:
    """A running task for the key, so that no worker reconciles the same account meanwhile.

    Race-free on PostgreSQL too: the queued row is taken over with a conditional UPDATE (a
    worker's claim of it in between makes it miss), and a second running task for the key is
    refused by the ``uq_tasks_running_key`` index.
    """
    running = session.scalar(
        select(Task.id).where(Task.app_id == app_id, Task.subject_id == user_id, Task.status == queue.RUNNING)
    )
    if running is not None:
        raise _Busy
    now = utcnow()
    take_over = dict(
        status=queue.RUNNING, claimed_by="on-demand", claimed_at=now, verify_remote=True,
        updated_at=now, reason="on_demand",
    )
    queued = session.scalar(
        select(Task.id).where(Task.app_id == app_id, Task.subject_id == user_id, Task.status == queue.QUEUED)
    )
    try:
        with session.begin_nested():
            if queued is not None:
                taken = session.execute(
                    update(Task)
                    .where(Task.id == queued, Task.status == queue.QUEUED)
                    .values(attempts=Task.attempts + 1, **take_over)
                    .returning(Task.id)
                ).scalar_one_or_none()
                if taken is None:
                    raise _Busy
                return taken
            task = Task(
                id=new_id(), app_id=app_id, subject_id=user_id, attempts=1, next_attempt_at=now,
                correlation_id=actor.correlation_id, created_at=now, **take_over,
            )
            session.add(task)
            session.flush()
            return task.id
    except IntegrityError:
        raise _Busy from None
