"""Which workers are alive, and the tasks of the ones that are not given back.

Each worker keeps a row in ``workers`` and beats it every few seconds (``heartbeat_every``).
A task is held by the worker named in ``claimed_by``; once that worker has been silent for the
worker timeout (``Settings.worker_timeout_seconds``, 30 s by default), any other worker puts
the task back in the queue. Liveness is the process's, not each task's: a live worker keeps
all its tasks however long one takes (each request has a deadline of its own), and a dead
one loses them all at once, in seconds rather than after a per-task lease.

Claims by something that keeps no row (provisioning on demand claims as ``on-demand`` inside
an API request) fall back to ``queue.LEASE``. A worker's writes stay guarded by the lease it
claimed with (engine.writer), so a worker taken for dead that comes back cannot overwrite
the work of the one that took its task over.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from provisiond.engine import queue
from provisiond.store.events import add_event
from provisiond.store.tables import Task, WorkerProcess, utcnow

# Rows of workers gone this long are forgotten; until then the Workers view shows them as lost.
FORGET_AFTER = timedelta(hours=24)


def heartbeat_every(timeout_seconds: float) -> float:
    """Beat six times per timeout: a loaded machine may miss a few beats, not the timeout."""
    return min(10.0, max(0.2, timeout_seconds / 6))


def register(session: Session, worker_id: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    row = session.get(WorkerProcess, worker_id)
    if row is None:
        session.add(
            WorkerProcess(
                id=worker_id, host=socket.gethostname()[:255], pid=os.getpid(),
                started_at=now, beat_at=now, in_flight=0, draining=False,
            )
        )
    else:
        row.beat_at, row.draining = now, False


def beat(
    session: Session, worker_id: str, in_flight: int, *, draining: bool, now: datetime | None = None
) -> None:
    """Record that the worker is alive (again: a row forgotten while it was away is made anew)."""
    now = now or utcnow()
    done = session.execute(
        update(WorkerProcess)
        .where(WorkerProcess.id == worker_id)
        .values(beat_at=now, in_flight=in_flight, draining=draining)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        register(session, worker_id, now)
        session.flush()
        beat(session, worker_id, in_flight, draining=draining, now=now)


def live_count(session: Session, timeout: timedelta, now: datetime | None = None) -> int:
    """How many workers beat within ``timeout``: more than one makes a cluster, whose claims
    hold each app's concurrency across all of them (engine.queue.claim)."""
    now = now or utcnow()
    return session.scalar(
        select(func.count()).select_from(WorkerProcess).where(WorkerProcess.beat_at >= now - timeout)
    ) or 0


def release_orphans(session: Session, timeout: timedelta, now: datetime | None = None) -> int:
    """Give back the tasks of workers silent for ``timeout``, and of claimers that keep no
    row whose lease (``queue.LEASE``) ran out. Returns how many went back to the queue."""
    now = now or utcnow()
    silent = select(WorkerProcess.id).where(WorkerProcess.beat_at < now - timeout)
    alive = select(WorkerProcess.id).where(WorkerProcess.beat_at >= now - timeout)
    orphans = list(
        session.scalars(
            select(Task)
            .where(
                Task.status == queue.RUNNING,
                Task.claimed_by.in_(silent)
                | (Task.claimed_by.not_in(alive) & (Task.claimed_at < now - queue.LEASE)),
            )
            .with_for_update(skip_locked=True)
        )
    )
    known = set(session.scalars(select(WorkerProcess.id)))
    for task in orphans:
        why = (
            f"worker {task.claimed_by} stopped beating"
            if task.claimed_by in known  # a row, not beating: it is silent
            else f"the claim by {task.claimed_by} outlived its lease"
        )
        _give_back(session, task, now, why)
    session.execute(delete(WorkerProcess).where(WorkerProcess.beat_at < now - FORGET_AFTER))
    return len(orphans)


def retire(session: Session, worker_id: str, now: datetime | None = None) -> int:
    """A worker stopping: what it still holds goes back to the queue, due now, and its row
    goes. Returns how many tasks it gave back."""
    now = now or utcnow()
    held = list(
        session.scalars(
            select(Task).where(Task.status == queue.RUNNING, Task.claimed_by == worker_id)
        )
    )
    for task in held:
        _give_back(session, task, now, f"worker {worker_id} stopped before finishing it")
    session.execute(delete(WorkerProcess).where(WorkerProcess.id == worker_id))
    return len(held)


def _give_back(session: Session, task: Task, now: datetime, why: str) -> None:
    """Requeue, due now, read back from the app first (what the worker sent may have been
    applied), and say so in the activity log: a delayed deprovisioning is never silent."""
    group = task.kind == "group"
    add_event(
        session, actor="provisiond", correlation_id=task.correlation_id,
        action="app.task.requeue", outcome="retry", app_id=task.app_id,
        user_id=None if group else task.subject_id,
        targets={"app": task.app_id, "group" if group else "user": task.subject_id},
        message=f"{why}: its task ({task.reason}) goes back to the queue",
        details={"task": task.id, "worker": task.claimed_by},
    )
    queue.requeue(session, task, at=now, error=why)
    task.verify_remote = True


@dataclass(frozen=True)
class WorkerState:
    id: str
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    in_flight: int
    state: str  # running | draining | lost


def workers(session: Session, timeout: timedelta, now: datetime | None = None) -> list[WorkerState]:
    """Every worker the database knows, newest first; ``lost`` once silent for ``timeout``."""
    now = now or utcnow()
    rows = session.scalars(select(WorkerProcess).order_by(WorkerProcess.started_at.desc()))
    return [
        WorkerState(
            row.id, row.host, row.pid, row.started_at, row.beat_at, row.in_flight,
            "lost" if row.beat_at < now - timeout else "draining" if row.draining else "running",
        )
        for row in rows
    ]
