"""``Database.reads`` and store/reads.py: Core statements on the DBAPI connection give what the
ORM gives, and on SQLite a read never waits for a writer."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import bindparam, select

from provisiond.runtime import Runtime
from provisiond.store.db import Database
from provisiond.store.tables import User

_users = User.__table__
BY_LOGIN = select(_users).where(_users.c.login_key == bindparam("key"))


def _add_user(runtime: Runtime, login: str) -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    with runtime.db.session() as session:
        session.add(User(login=login, login_key=login.casefold(), status="active",
                         profile={"login": login, "nested": {"n": 1, "list": [True, None]}},
                         created_at=moment, updated_at=moment, status_changed_at=moment))


def test_a_read_gives_the_orm_rows_values(runtime: Runtime) -> None:
    _add_user(runtime, "Ada.Reads")
    with runtime.db.reads() as reads:
        rows = reads.all(BY_LOGIN, key="ada.reads")
        assert reads.all(BY_LOGIN, key="nobody") == []
    with runtime.db.session() as session:
        orm = session.scalars(select(User).where(User.login_key == "ada.reads")).one()
        for column in _users.columns:
            assert getattr(rows[0], column.key) == getattr(orm, column.key), column.key
    assert rows[0].created_at.tzinfo is not None
    assert rows[0].profile["nested"] == {"n": 1, "list": [True, None]}


def test_a_sqlite_read_never_waits_for_a_writer(runtime: Runtime) -> None:
    if runtime.db.is_postgres:
        assert runtime.db.reads_never_wait is False  # its reads run in a thread
        return
    assert runtime.db.reads_never_wait is True
    _add_user(runtime, "grace.reads")
    writing, done = threading.Event(), threading.Event()

    def writer() -> None:
        with runtime.db.session() as session:
            session.get(User, "x")  # BEGIN IMMEDIATE: the write lock held from here
            session.query(User).filter(User.login_key == "grace.reads").update(
                {"login": "Grace.Changed"})
            session.flush()
            writing.set()
            done.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(30)
        started = time.monotonic()
        with runtime.db.reads() as reads:
            rows = reads.all(BY_LOGIN, key="grace.reads")
        assert time.monotonic() - started < 5  # no wait for the lock (SQLite would wait 30 s)
        assert rows[0].login == "grace.reads"  # the last committed state
    finally:
        done.set()
        thread.join(30)
    with runtime.db.reads() as reads:
        assert reads.all(BY_LOGIN, key="grace.reads")[0].login == "Grace.Changed"


def test_an_in_memory_database_reads_in_a_thread() -> None:
    database = Database("sqlite:///:memory:")
    try:
        assert database.reads_never_wait is False
    finally:
        database.dispose()
