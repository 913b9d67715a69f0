"""The running system: settings, database, vault and worker, built once at start-up."""

from __future__ import annotations

import logging

import httpx

from provisiond.config import Settings
from provisiond.engine.threads import WorkerThread, libpq_url, wake_on_commit
from provisiond.engine.worker import Worker
from provisiond.store import keys, migrate
from provisiond.store.db import Database

log = logging.getLogger("provisiond")


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.db = db or Database(settings.effective_database_url)
        try:
            self.keys = self._key_ring()
        except keys.KeyMismatch:
            if db is None:
                self.db.dispose()
            raise
        self.vault = self.keys.vault()
        self.transport = transport  # tests inject a misbehaving transport here, nowhere else
        self.worker: Worker | None = None
        self._thread: WorkerThread | None = None

    def __repr__(self) -> str:
        return f"Runtime(db={self.db.engine.url!r})"  # the URL's password is masked

    def _key_ring(self) -> keys.KeyRing:
        # A key file is made only for a database that holds nothing sealed: a missing key next
        # to sealed credentials is refused rather than replaced by a key that opens nothing.
        ring = keys.load(self.settings, may_create=lambda: not keys.holds_sealed(self.db.engine))
        # Refused here (KeyMismatch), before anything runs, when the key opens nothing stored.
        for warning in keys.check(self.db.engine, ring):
            log.warning("%s", warning)
        return ring

    def migrate(self) -> None:
        migrate.upgrade(self.db.engine)
        self.seal_canary()

    def seal_canary(self) -> None:
        """Record which key this database's credentials are sealed with (once, after migrating)."""
        with self.db.session() as session:
            keys.seal_canary(session, self.keys)

    def start_worker(self) -> None:
        self.worker = Worker(self.db, self.settings, self.vault, transport=self.transport)
        wake_on_commit(self.db, self.worker.wake)
        listen = libpq_url(self.db.url) if self.db.is_postgres else None
        self._thread = WorkerThread(self.worker, listen_url=listen)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
