"""Scheduled full syncs: each app reconciled in full, reading the app, every so often.

An app's ``full_sync_every_hours`` (daily by default; None for on demand only) says how long
after its last full run (started by anyone) the next one is due. Exactly one scheduler of the
cluster starts them: every process that runs a worker ticks, and a tick first takes a
transaction-scoped advisory lock on PostgreSQL (the others skip that tick); on SQLite the one
writer serialises ticks anyway. A tick that finds an app overdue — for a minute or a month, the
scheduler having been stopped — starts one run, whose start resets the clock: a missed
schedule runs once, not once per missed interval. Apps disabled, quarantined or with a full
run still going are left for a later tick.

The same tick runs the stored LDAP sources that are due (services.ldap_sources): claimed under
the lock (their last run set to now, so no other scheduler takes them), then run after it.
It also resumes CSV imports whose applier stopped (services.import_apply.resume_stalled).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from provisiond.runtime import Runtime
from provisiond.services import activity, import_apply, ldap_sources, runs
from provisiond.services.apps import provisioning_of
from provisiond.services.context import Actor
from provisiond.store.db import Database
from provisiond.store.tables import App, AppPause, Run, utcnow

log = logging.getLogger(__name__)

SCHEDULER = Actor("scheduler")
SCHEDULE_LOCK = 0x73636864  # "schd": the advisory lock one scheduler of the cluster holds per tick


def due(session: Session, now: datetime | None = None) -> list[App]:
    """The apps whose scheduled full sync is due now."""
    now = now or utcnow()
    last_full: dict[str, datetime] = {
        app_id: started
        for app_id, started in session.execute(
            select(Run.app_id, func.max(Run.started_at)).where(Run.kind == "full")
            .group_by(Run.app_id)
        )
    }
    running = set(
        session.scalars(select(Run.app_id).where(Run.kind == "full", Run.status == "running"))
    )
    quarantined = set(
        session.scalars(select(AppPause.app_id).where(AppPause.kind == "quarantine"))
    )
    found = []
    for app in session.scalars(select(App).order_by(App.name)):
        settings = provisioning_of(app)
        every = settings.full_sync_every_hours
        if not settings.enabled or every is None or app.id in running | quarantined:
            continue
        since = last_full.get(app.id) or app.created_at
        if since + timedelta(hours=every) <= now:
            found.append(app)
    return found


def run_due(db: Database, now: datetime | None = None) -> list[str]:
    """One tick: start the full syncs that are due, unless another scheduler is ticking.
    Returns the names of the apps whose run was started."""
    with db.session() as session:
        if db.is_postgres and not session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SCHEDULE_LOCK}
        ):
            return []
        started = []
        for app in due(session, now):
            actor = Actor(SCHEDULER.name)  # a correlation id of the run's own
            every = provisioning_of(app).full_sync_every_hours
            try:
                with session.begin_nested():  # one app's failure leaves the others' runs
                    run = runs.start_full_sync(session, actor, app, reason="app.sync.scheduled")
            except Exception as exc:  # recorded, and tried again at the next tick
                log.warning("the scheduled full sync of %s failed to start", app.name,
                            exc_info=True)
                activity.record(
                    session, actor, "app.sync.schedule",
                    f"scheduled full sync of {app.name} could not start: "
                    f"{type(exc).__name__}: {exc}"[:500],
                    outcome="failure", app_id=app.id, targets={"app": app.name},
                    details={"every_hours": every},
                )
                continue
            activity.record(
                session, actor, "app.sync.schedule",
                f"scheduled full sync of {app.name} started (every {every:g} h)",
                app_id=app.id, targets={"app": app.name, "run_id": run.id},
                details={"every_hours": every},
            )
            started.append(app.name)
        return started


def claim_due_sources(db: Database, now: datetime | None = None) -> list[str]:
    """The ids of the stored LDAP sources due now, claimed for this scheduler (their last run
    set to now), unless another scheduler is ticking."""
    with db.session() as session:
        if db.is_postgres and not session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SCHEDULE_LOCK}
        ):
            return []
        rows = ldap_sources.due(session, now)
        for row in rows:
            row.last_run_at = now or utcnow()
        return [row.id for row in rows]


class Scheduler:
    """Ticks ``run_due`` on a thread of its own until stopped (beside a worker); given the
    runtime, also runs the LDAP sources that are due."""

    def __init__(self, db: Database, tick_seconds: float, rt: Runtime | None = None) -> None:
        self.db, self.tick, self.rt = db, tick_seconds, rt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="provisiond-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                started = run_due(self.db)
            except Exception:  # the database away for a while: the next tick tries again
                log.warning("the scheduler's tick failed", exc_info=True)
                continue
            for name in started:
                log.info("scheduled full sync of %s started", name)
            self._resume_imports()
            if self.rt is not None:
                self._run_sources(self.rt)

    def _resume_imports(self) -> None:
        try:
            for import_id in import_apply.resume_stalled(self.db):
                log.info("resumed CSV import %s, interrupted while it was applied", import_id)
        except Exception:
            log.warning("resuming interrupted CSV imports failed", exc_info=True)

    def _run_sources(self, rt: Runtime) -> None:
        try:
            ids = claim_due_sources(self.db)
            if ids:  # this thread has no event loop of its own: one per batch of runs
                for name in asyncio.run(ldap_sources.run_due(rt, ids)):
                    log.info("scheduled run of LDAP source %s applied", name)
        except Exception:
            log.warning("the scheduler's LDAP sources failed", exc_info=True)
