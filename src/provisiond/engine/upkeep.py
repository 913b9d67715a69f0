"""What a worker does beside reconciling: its heartbeat, the pauses and quarantines of apps.

Each heartbeat (six per worker timeout, on the worker's database thread) beats the worker's
row and gives back the tasks of workers that stopped beating (engine.liveness), ends the
pauses that are over and reads the ones in force (engine.throttle), and takes the quarantine
probes that are due (engine.quarantine), which then run on the worker's event loop. Between
beats, the worker's own requests tell it at once when an app asks to slow down or keeps
failing, so the tasks it already holds wait too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from provisiond.config import Settings
from provisiond.engine import liveness, quarantine, retention, throttle
from provisiond.engine.connections import ConnectorPool
from provisiond.engine.context import AppContext, read_context
from provisiond.errors import ConnectorError
from provisiond.store.db import Database
from provisiond.store.secrets import Vault
from provisiond.store.tables import utcnow

log = logging.getLogger("provisiond.worker")
RETENTION_OFFER = 60.0  # seconds between a worker's offers to run the retention job


def _log_failure(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.warning("the activity log's retention round failed", exc_info=done.exception())


class Upkeep:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        vault: Vault,
        worker_id: str,
        pool: ConnectorPool,
        *,
        in_db: Callable[..., Awaitable[Any]],
        spawn: Callable[[Any], None],
        wake: Callable[[], None],
        in_flight: Callable[[], int],
    ) -> None:
        self.db, self.settings, self.vault, self.id, self.pool = db, settings, vault, worker_id, pool
        self._in_db, self._spawn, self._wake, self._in_flight = in_db, spawn, wake, in_flight
        self._beaten: float | None = None  # monotonic time of the last heartbeat written
        self._live = 1  # workers beating, this one included, as of the last heartbeat
        # app id -> until when its tasks wait: a pause's end, or a quarantine's next probe.
        self._paused: dict[str, datetime] = {}
        self._watch = quarantine.Watch()  # recent attempts per app: quarantine it?
        self._retention: asyncio.Future[Any] | None = None
        self._retention_offered: float | None = None  # monotonic

    # -- the heartbeat -------------------------------------------------------------------------

    async def heartbeat(self, stop: asyncio.Event) -> None:
        """Beat until cancelled (the worker cancels it once it has stopped)."""
        every = liveness.heartbeat_every(self.settings.worker_timeout_seconds)
        while True:
            try:
                probes = await self._in_db(self._beat, stop.is_set())
                self._beaten = time.monotonic()
                for app_id in probes:
                    self._spawn(self._probe(app_id))
                self._offer_retention(stop)
            except SQLAlchemyError:
                log.debug("heartbeat failed", exc_info=True)
            await asyncio.sleep(every)

    def _beat(self, draining: bool) -> list[str]:
        """Beat; give back dead workers' tasks; end the pauses that are over and read the
        rest; take the quarantine probes that are due (returned, to run on the loop)."""
        timeout = timedelta(seconds=self.settings.worker_timeout_seconds)
        with self.db.session() as session:
            liveness.beat(session, self.id, self._in_flight(), draining=draining)
            self._live = liveness.live_count(session, timeout)
        with self.db.session() as session:
            released = liveness.release_orphans(session, timeout)
        with self.db.session() as session:
            resumed = throttle.resume_expired(session, correlation_id=f"worker:{self.id}"[:36])
            self._paused = throttle.paused(session)
        probes: list[str] = []
        if not draining:
            with self.db.session() as session:
                probes = quarantine.take_due_probes(session)
        if released:
            log.warning("gave %d tasks of stopped workers back to the queue", released)
        if released or resumed:
            self._wake()
        return probes

    def _offer_retention(self, stop: asyncio.Event) -> None:
        """About once a minute, offer to run the activity log's periodic job (engine.retention:
        one process of the cluster wins it), on a thread of its own, as a round can take
        minutes and the heartbeat must not wait for it."""
        now = time.monotonic()
        running = self._retention is not None and not self._retention.done()
        offered = self._retention_offered
        if stop.is_set() or running or (offered is not None and now - offered < RETENTION_OFFER):
            return
        self._retention_offered = now
        self._retention = asyncio.ensure_future(asyncio.to_thread(
            retention.run_if_due, self.db, self.settings, f"worker:{self.id}"[:128], stop.is_set
        ))
        self._retention.add_done_callback(_log_failure)

    async def registered(self) -> bool:
        """May the worker claim? Its row must exist first (claims by a worker without one
        would be taken for abandoned), and not while its heartbeat is failing: past half the
        timeout, other workers may be about to take its tasks back, and would take these too."""
        if self._beaten is None:
            await self._in_db(self._beat, False)
            self._beaten = time.monotonic()
        return time.monotonic() - self._beaten < self.settings.worker_timeout_seconds / 2

    def clustered(self) -> bool:
        """Do other workers share this database (PostgreSQL)? Then claims hold every app's
        concurrency cluster-wide. A worker joining a cluster claims capped from its first
        claim (it beats before it claims); the others learn of it at their next beat, and
        meanwhile the newcomer's capped claim counts their running tasks too."""
        return self._live > 1 and self.db.is_postgres

    def beating(self) -> bool:
        """Has the worker written its heartbeat within the worker timeout (/readyz)?"""
        beaten = self._beaten
        return beaten is not None and (
            time.monotonic() - beaten < self.settings.worker_timeout_seconds
        )

    def retire(self) -> int:
        """Stopping: give back what the worker still holds, and forget its row."""
        with self.db.session() as session:
            return liveness.retire(session, self.id)

    # -- pauses and quarantine ------------------------------------------------------------------

    def paused_until(self, app_id: str) -> datetime | None:
        """Until when the app's tasks wait (it is paused or quarantined), or None."""
        until = self._paused.get(app_id)
        return until if until is not None and until > utcnow() else None

    def answered(self, app_id: str) -> None:
        """The app took a request."""
        self._watch.succeeded(app_id)

    def failed(self, app_id: str, exc: ConnectorError, retry_after: float | None) -> str | None:
        """The app refused a request: the reason to quarantine it, if it is time. A 429 with
        Retry-After pauses it instead (the tasks held here wait at once; the pause itself is
        written with the outcome, for the cluster)."""
        now = utcnow()
        if retry_after is not None:
            until = now + min(timedelta(seconds=retry_after), throttle.MAX_PAUSE)
            self._paused[app_id] = max(until, self._paused.get(app_id, until))
            return None
        why = self._watch.failed(app_id, transient=exc.retryable, http_status=exc.http_status)
        if why is not None:  # until a probe passes; the heartbeat reads the next probe's time
            self._paused[app_id] = now + timedelta(hours=1)
        return why

    async def _probe(self, app_id: str) -> None:
        """The connection test of a quarantined app: passed, the app resumes at once."""
        correlation = f"probe:{app_id}"[:36]
        try:
            ctx = await self._in_db(self._context_of, app_id)
            if ctx is None:
                return  # deleted meanwhile: its quarantine went with it
            report = await (await self.pool.get(ctx)).test_connection()
            why = report.reason
        except Exception as exc:  # a probe that cannot run failed; it runs again later
            why = f"{type(exc).__name__}: {exc}"[:300]
        await self._in_db(self._probed, app_id, why, correlation)
        if why is None:
            self._paused.pop(app_id, None)
            self._wake()

    def _probed(self, app_id: str, why: str | None, correlation: str) -> None:
        with self.db.session() as session:
            if why is None:
                quarantine.resume(session, app_id, "the probe passed", actor="provisiond",
                                  correlation_id=correlation)
            else:
                quarantine.probe_failed(session, app_id, why, correlation_id=correlation)

    def _context_of(self, app_id: str) -> AppContext | None:
        with self.db.session() as session:
            return read_context(session, self.vault, app_id)
