"""Runs: a full reconcile of an app, made of one task per user, with live counts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.engine import queue
from provisiond.errors import Conflict, NotFound
from provisiond.services import activity, reach
from provisiond.services.apps import get_app, provisioning_of
from provisiond.services.context import Actor
from provisiond.store.tables import App, Run, utcnow

OUTCOMES = (
    "created",
    "updated",
    "deactivated",
    "reactivated",
    "deleted",
    "unchanged",
    "skipped",
    "failed",
)


def get_run(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}")
    return run


def list_runs(session: Session, app_id: str, limit: int = 50) -> Sequence[Run]:
    app = get_app(session, app_id)
    return session.scalars(
        select(Run).where(Run.app_id == app.id).order_by(Run.started_at.desc()).limit(limit)
    ).all()


def start_full_sync(session: Session, actor: Actor, app: App, *, reason: str = "app.sync") -> Run:
    """Reconcile every user assigned to the app or holding an account in it, reading the app."""
    if not provisioning_of(app).enabled:
        raise Conflict(f"provisioning is disabled for {app.name}: enable it before a sync")
    users = sorted(
        set(reach.assigned_users(session, app.id)) | reach.account_holders(session, app.id)
    )
    run = Run(
        app_id=app.id,
        kind="full",
        status="running",
        actor=actor.name,
        total=0,
        counts={outcome: 0 for outcome in OUTCOMES},
    )
    session.add(run)
    session.flush()
    attached = queue.enqueue(
        session,
        app.id,
        users,
        reason=reason,
        correlation_id=actor.correlation_id,
        run_id=run.id,
        verify_remote=True,
    )
    run.total = len(attached)
    if run.total == 0:
        run.status, run.finished_at = "succeeded", utcnow()
    activity.record(
        session,
        actor,
        "app.run.start",
        f"full sync of {app.name} started: {run.total} users",
        app_id=app.id,
        targets={"app": app.name, "run_id": run.id},
    )
    return run


def count_outcome(session: Session, run_id: str, outcome: str) -> None:
    """Add one task's outcome to its run, closing the run when every task has an outcome."""
    statement = select(Run).where(Run.id == run_id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()  # parallel workers update the same counts
    run = session.scalar(statement)
    if run is None:
        return
    counts = dict(run.counts)
    counts[outcome] = counts.get(outcome, 0) + 1
    run.counts = counts
    if run.status == "running" and sum(counts.values()) >= run.total:
        run.status = "failed" if counts.get("failed") else "succeeded"
        run.finished_at = utcnow()
        app = session.get(App, run.app_id)
        summary = ", ".join(f"{value} {key}" for key, value in counts.items() if value)
        activity.record(
            session,
            Actor(run.actor),
            "app.run.finish",
            f"full sync of {app.name if app else run.app_id} {run.status}: {summary or 'nothing to do'}",
            outcome="success" if run.status == "succeeded" else "failure",
            app_id=run.app_id,
            targets={"run_id": run.id},
            details={"counts": counts},
        )
