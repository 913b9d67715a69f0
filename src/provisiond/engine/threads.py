"""Running a worker beside the API: its own thread and event loop, woken on commit or NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from provisiond.engine import queue
from provisiond.engine.worker import Worker
from provisiond.store.db import Database

log = logging.getLogger("provisiond.worker")


def wake_on_commit(db: Database, callback: Callable[[], None]) -> None:
    """Call ``callback`` after any commit that queued tasks (the in-process, event-driven path)."""

    @sa_event.listens_for(db.sessions, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.info.pop("tasks_enqueued", False):
            callback()

    @sa_event.listens_for(db.sessions, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop("tasks_enqueued", None)


class WorkerThread:
    """A worker with its own event loop in a daemon thread (``serve``, tests)."""

    def __init__(self, worker: Worker, listen_url: str | None = None) -> None:
        self.worker = worker
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="provisiond-worker", daemon=True)
        self._listen_url = listen_url
        self._listening = True
        self._listener: threading.Thread | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._listen_url:
            self._listener = threading.Thread(
                target=self._listen, name="provisiond-listen", daemon=True
            )
            self._listener.start()

    def _main(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await self.worker.run(self._stop)

        asyncio.run(main())

    def _listen(self) -> None:
        """PostgreSQL LISTEN: tasks queued by other processes wake this worker at once."""
        import psycopg

        assert self._listen_url is not None
        while self._listening:
            try:
                with psycopg.connect(self._listen_url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {queue.NOTIFY_CHANNEL}")
                    while self._listening:
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.worker.wake()
            except psycopg.Error:
                if self._listening:
                    log.warning("LISTEN connection lost; retrying in 1 s")
                    time.sleep(1)

    def stop(self) -> None:
        self._listening = False
        loop, stop = self.worker._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        # The worker finishes its tasks for up to the drain period, then gives the rest back.
        self._thread.join(self.worker.settings.worker_drain_seconds + 15)
        if self._listener is not None:
            self._listener.join(5)


def libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)
