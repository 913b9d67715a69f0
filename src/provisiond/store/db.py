"""The database engine and sessions. SQLite is tuned for one process with a worker thread."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

# Imported for its session hooks: every transaction's events are counted in its rollups.
from provisiond.store import rollups  # noqa: F401
from provisiond.store.reads import Reads


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # The URL's own parse, not a split on "///": "sqlite://" (in memory) has no path, and
        # splitting made a file named "sqlite:" in the working directory.
        path = make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            _private_file(Path(path))
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take it over so that a
        # transaction that will write takes the write lock at once (BEGIN IMMEDIATE).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, **kwargs)


def _private_file(path: Path) -> None:
    """The database file exists, readable by its owner only, before SQLite opens it.

    It holds password hashes, token hashes and sealed credentials. SQLite creates the -wal and
    -shm files with the database file's mode, so they are 0600 too; files an older provisiond
    made are tightened here.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """An engine and its session factory; the session is passed explicitly to services."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite takes one writer at a time, and every transaction here is BEGIN IMMEDIATE.
        # Threads of one process (the API's and the worker's) queue on this lock instead of
        # on SQLite's busy handler, whose back-off sleeps (up to 100 ms a try) made a leaver's
        # lifecycle call wait most of a second behind a busy worker. Other processes on the
        # same file still meet the busy handler.
        self._writer = threading.RLock() if url.startswith("sqlite") else None
        self._readers = threading.local()  # SQLite: a read connection a thread (``reads``)
        self._reader_list = threading.Lock()
        self._opened: list[sqlite3.Connection] = []

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self._serialised(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        if self._writer is None:
            yield
            return
        with self._writer:
            yield

    @property
    def reads_never_wait(self) -> bool:
        """Whether ``reads`` never waits, so that it may run on an event loop: a SQLite file
        in WAL mode, whose readers never wait for a writer. PostgreSQL's do (a pool
        checkout, the network): run them in a thread."""
        if not self.url.startswith("sqlite"):
            return False
        path = make_url(self.url).database
        if not path or path == ":memory:" or "mode=memory" in self.url:
            return False  # another connection would see another database
        with self.reads() as reads:
            mode = reads.connection.execute("PRAGMA journal_mode").fetchone()[0]
        return str(mode).lower() == "wal"

    @contextmanager
    def reads(self) -> Iterator[Reads]:
        """One read-only transaction on a DBAPI connection, for the hottest reads (statements
        compiled once, store/reads.py), outside the writer lock and without BEGIN IMMEDIATE.

        On SQLite a connection of this thread's own, ``query_only``, its busy timeout 0 (it
        fails at once with ``OperationalError`` where a session would wait), in a deferred
        BEGIN: one snapshot for every statement, no write lock. On PostgreSQL a connection
        of the engine's pool. SQLAlchemy's own execution was most of a lookup's database
        time (bench/RESULTS.md §10c)."""
        if self.url.startswith("sqlite"):
            connection = self._sqlite_reader()
            connection.execute("BEGIN")
            try:
                yield Reads(connection, self.engine.dialect)
            finally:
                if connection.in_transaction:  # a read: nothing to keep or undo either way
                    connection.execute("COMMIT")
            return
        raw = self.engine.raw_connection()
        try:
            yield Reads(raw.driver_connection, self.engine.dialect)
            raw.rollback()
        finally:
            raw.close()

    def _sqlite_reader(self) -> Any:
        connection = getattr(self._readers, "connection", None)
        if connection is None:
            path = make_url(self.url).database or ":memory:"
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA query_only=ON")
            connection.execute("PRAGMA busy_timeout=0")
            self._readers.connection = connection
            with self._reader_list:
                self._opened.append(connection)
        return connection

    def dispose(self) -> None:
        self.engine.dispose()
        with self._reader_list:
            for connection in self._opened:
                connection.close()
            self._opened.clear()
        self._readers = threading.local()
