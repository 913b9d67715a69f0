"""The durable task queue: enqueue in the caller's transaction, claim with SKIP LOCKED.

A change and the tasks it causes commit together (transactional outbox), so a crash can never
lose a deprovisioning. Tasks are keys (app, user), coalesced: at most one queued task a key, and
a key never runs twice at once, so operations on one account stay in order across workers.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from provisiond.store.tables import Task, new_id, utcnow

QUEUED, RUNNING, SUCCEEDED, DEAD, DISMISSED, SUPERSEDED = (
    "queued",
    "running",
    "succeeded",
    "dead",
    "dismissed",
    "superseded",
)
NOTIFY_CHANNEL = "provisiond_tasks"
LEASE = timedelta(minutes=5)


def enqueue(
    session: Session,
    app_id: str,
    user_ids: Iterable[str],
    *,
    reason: str,
    correlation_id: str,
    run_id: str | None = None,
    verify_remote: bool = False,
    kind: str = "user",
) -> list[str]:
    """Queue a reconcile of each (app, user); returns the ids of the tasks that carry ``run_id``.

    ``kind="group"`` queues the reconcile of pushed groups instead: ``user_ids`` are then the
    ids of the directory groups (engine.groups).

    An existing queued task for the same key is made due now instead of queuing a second one.
    """
    now = utcnow()
    priority = priority_of(reason, run_id)
    attached: list[str] = []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for user_id in user_ids:
        task_id = new_id()
        statement = insert(Task).values(
            id=task_id,
            app_id=app_id,
            kind=kind,
            user_id=user_id,
            run_id=run_id,
            reason=reason,
            verify_remote=verify_remote,
            priority=priority,
            status=QUEUED,
            attempts=0,
            next_attempt_at=now,
            correlation_id=correlation_id,
            created_at=now,
            updated_at=now,
        )
        new = statement.excluded
        # One atomic upsert, not "insert, else select and update": between a select and an
        # update a worker may claim the queued row, and the change would ride on a task
        # whose snapshot was taken before it (PostgreSQL re-checks the conflict instead).
        upsert = statement.on_conflict_do_update(
            index_elements=["app_id", "user_id"],
            index_where=text("status = 'queued'"),
            set_={
                "next_attempt_at": new.next_attempt_at,
                "reason": new.reason,
                "updated_at": new.updated_at,
                "verify_remote": Task.verify_remote | new.verify_remote,
                "priority": case((Task.priority < new.priority, Task.priority), else_=new.priority),
                "run_id": func.coalesce(Task.run_id, new.run_id),
            },
        ).returning(Task.id, Task.run_id)
        row = session.execute(upsert).one()
        if run_id and row.run_id == run_id:
            attached.append(row.id)
    session.info["tasks_enqueued"] = True
    if dialect == "postgresql":
        # Delivered on commit only: workers on other hosts wake exactly when the tasks exist.
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return attached


LIFECYCLE_REASONS = ("user.lifecycle.", "user.delete")


def priority_of(reason: str, run_id: str | None) -> int:
    """A person's lifecycle change goes first: a leaver must not wait behind a bulk import."""
    if reason.startswith(LIFECYCLE_REASONS):
        return 0
    return 2 if run_id else 1


def claim(
    session: Session,
    worker_id: str,
    limit: int,
    now: datetime | None = None,
    *,
    skip_apps: Iterable[str] = (),
) -> list[Task]:
    """Take up to ``limit`` due tasks whose key is not running elsewhere; marks them running.

    Highest priority first, then oldest; ``skip_apps`` are apps this worker has no room for
    (their concurrency is used up), so their backlog cannot starve other apps.
    """
    now = now or utcnow()
    running = aliased(Task)
    busy = exists().where(
        and_(
            running.app_id == Task.app_id,
            running.user_id == Task.user_id,
            running.status == RUNNING,
        )
    )
    statement = (
        select(Task)
        .where(Task.status == QUEUED, Task.next_attempt_at <= now, ~busy)
        .order_by(Task.priority, Task.next_attempt_at, Task.created_at)
        .limit(limit)
    )
    skipped = list(skip_apps)
    if skipped:
        statement = statement.where(Task.app_id.not_in(skipped))
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True, of=Task)
    tasks = list(session.scalars(statement))
    for task in tasks:
        task.status = RUNNING
        task.claimed_by = worker_id
        task.claimed_at = now
        task.attempts += 1
        # ``updated_at`` is left alone: it says when the change this task carries was queued,
        # which a held run's cancel reads to tell its own tasks from later ones.
    return tasks


def next_due(session: Session) -> datetime | None:
    return session.scalar(
        select(Task.next_attempt_at)
        .where(Task.status == QUEUED)
        .order_by(Task.next_attempt_at)
        .limit(1)
    )


def release_expired_leases(session: Session, now: datetime | None = None) -> int:
    """Requeue tasks whose worker died mid-run (no heartbeat within the lease)."""
    now = now or utcnow()
    stale = list(
        session.scalars(select(Task).where(Task.status == RUNNING, Task.claimed_at < now - LEASE))
    )
    for task in stale:
        requeue(session, task, at=now, error="the worker running this task stopped")
    return len(stale)


def requeue(session: Session, task: Task, *, at: datetime, error: str | None) -> None:
    """Put a running task back in the queue, or fold it into a newer queued task of its key."""
    task.last_error = error  # ``updated_at`` kept: still the change it was (see ``claim``)
    newer = session.scalars(
        select(Task).where(
            Task.app_id == task.app_id,
            Task.user_id == task.user_id,
            Task.status == QUEUED,
            Task.id != task.id,
        )
    ).first()
    if newer is not None:
        # Level-based: the newer task reconciles the same key, so this one is superseded.
        task.status = SUPERSEDED
        newer.next_attempt_at = min(newer.next_attempt_at, at)
        if task.run_id and newer.run_id is None:
            newer.run_id, task.run_id = task.run_id, None
        return
    task.status = QUEUED
    task.next_attempt_at = at
    task.claimed_by = None


def defer(session: Session, task: Task, *, at: datetime) -> None:
    """Put a claimed task back untouched (its attempt undone, its ``updated_at`` kept, so that
    it still reads as the change it was), or fold it into a newer queued task of its key."""
    newer = session.scalars(
        select(Task).where(
            Task.app_id == task.app_id,
            Task.user_id == task.user_id,
            Task.status == QUEUED,
            Task.id != task.id,
        )
    ).first()
    if newer is not None:
        task.status = SUPERSEDED
        return
    task.status, task.claimed_by, task.next_attempt_at = QUEUED, None, at
    task.attempts = max(0, task.attempts - 1)


def backoff(attempts: int, base: float, ceiling: float, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; a target's Retry-After is a floor, never ignored."""
    delay = random.uniform(0, min(ceiling, base * 2 ** max(0, attempts - 1)))
    delay = max(delay, base / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, ceiling))
    return delay


def retry(session: Session, task_ids: Sequence[str]) -> None:
    session.execute(
        update(Task)
        .where(Task.id.in_(task_ids))
        .values(
            status=QUEUED,
            attempts=0,
            next_attempt_at=utcnow(),
            last_error=None,
            updated_at=utcnow(),
        )
    )
    session.info["tasks_enqueued"] = True
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
