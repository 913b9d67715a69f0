"""A CSV import interrupted while it is applied (its process gone) is resumed by another
process, applying each row once; a live applier's import is never taken, an applier that lost
its lease stops before changing anything, and an import interrupted too long ago is failed
rather than applied against a directory that has moved on."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from provisiond.errors import Conflict
from provisiond.runtime import Runtime
from provisiond.services import import_apply, imports
from provisiond.services.context import Actor
from provisiond.store.db import Database
from provisiond.store.tables import Event, User, UserImport, utcnow

ADMIN = Actor("ada-admin")


def planned(db: Database, rows: int) -> tuple[str, str]:
    """A file of ``rows`` new users, read and started: (import id, its applier)."""
    body = "login,email,firstName,lastName\r\n" + "".join(
        f"u{n:05d},u{n:05d}@example.com,U,{n}\r\n" for n in range(rows)
    )
    with db.session() as session:
        imported = imports.read_file(
            session, ADMIN, io.StringIO(body, newline=""), imports.Options(mapping={}),
            filename="staff.csv",
        )
        assert imported.status == "ready"
        import_id = imported.id
    with db.session() as session:
        applier = import_apply.start(session, ADMIN, import_id).applier
    assert applier
    return import_id, applier


def users(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)


def the_import(db: Database, import_id: str) -> UserImport:
    with db.session() as session:
        found = session.get(UserImport, import_id)
        assert found is not None
        session.expunge(found)
        return found


def stopped(db: Database, import_id: str, ago: timedelta) -> None:
    """As if the applier last renewed its lease ``ago``."""
    with db.session() as session:
        found = session.get(UserImport, import_id)
        assert found is not None
        found.lease_until = utcnow() - ago + import_apply.LEASE


def join_appliers(import_id: str) -> None:
    for thread in threading.enumerate():
        if thread.name == f"import-{import_id[:8]}":
            thread.join(60)


def import_events(db: Database) -> list[tuple[str, str]]:
    with db.session() as session:
        return [(a, o) for a, o in session.execute(
            select(Event.action, Event.outcome).where(Event.action.like("user.import.%"))
            .order_by(Event.id)
        )]


def test_an_interrupted_import_is_resumed_and_applies_each_row_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = runtime.db
    monkeypatch.setattr(imports, "CHUNK", 10)
    import_id, first = planned(db, 35)
    # The first applier does one chunk and dies (no further transaction of its own).
    assert import_apply._apply_chunk(db, ADMIN, import_id, first)
    assert users(db) == 10

    assert import_apply.resume_stalled(db) == []  # its lease is still running
    stopped(db, import_id, ago=import_apply.LEASE + timedelta(seconds=1))
    assert import_apply.resume_stalled(db) == [import_id]
    assert import_apply.resume_stalled(db) == []  # taken once
    join_appliers(import_id)

    imported = the_import(db, import_id)
    assert imported.status == "succeeded", imported.errors
    assert {k: n for k, n in imported.done.items() if n} == {"create": 35}
    assert imported.applier not in (None, first) and imported.lease_until is None
    assert [a for a, _ in import_events(db)] == [
        "user.import.read", "user.import.start", "user.import.resume", "user.import.finish"
    ]
    with db.session() as session:
        creators = set(session.scalars(
            select(Event.actor).where(Event.action == "user.lifecycle.create")
        ))
    assert creators == {"ada-admin"}  # the rows keep the name of the admin who applied them
    assert users(db) == 35


def test_an_applier_that_lost_its_lease_stops_before_changing_anything(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = runtime.db
    monkeypatch.setattr(imports, "CHUNK", 10)
    import_id, first = planned(db, 25)
    other = import_apply.new_applier()
    with db.session() as session:  # taken over, as resume_stalled does (without its thread)
        found = session.get(UserImport, import_id)
        assert found is not None
        found.applier, found.lease_until = other, utcnow() + import_apply.LEASE

    import_apply.apply(db, ADMIN, import_id, first)  # the stalled first applier wakes up
    assert users(db) == 0
    imported = the_import(db, import_id)
    assert imported.status == "applying" and not any(imported.done.values())
    import_apply.apply(db, ADMIN, import_id, other)
    assert the_import(db, import_id).status == "succeeded"
    assert users(db) == 25


def test_an_import_interrupted_too_long_ago_is_failed_not_applied(runtime: Runtime) -> None:
    db = runtime.db
    import_id, _ = planned(db, 5)
    stopped(db, import_id, ago=import_apply.RESUME_WITHIN + timedelta(minutes=1))
    assert import_apply.resume_stalled(db) == []
    imported = the_import(db, import_id)
    assert imported.status == "failed" and imported.finished_at is not None
    assert "read the file again" in imported.errors["items"][-1]["message"]
    assert import_events(db)[-1] == ("user.import.resume", "failure")
    assert users(db) == 0


def test_an_import_from_before_leases_is_failed_not_applied(runtime: Runtime) -> None:
    db = runtime.db
    import_id, _ = planned(db, 5)
    with db.session() as session:  # as migration 0029 leaves an import applying before it
        found = session.get(UserImport, import_id)
        assert found is not None
        found.applier = found.lease_until = None
    assert import_apply.resume_stalled(db) == []
    assert the_import(db, import_id).status == "failed"
    assert users(db) == 0


def test_an_import_being_applied_cannot_be_discarded_or_started_again(runtime: Runtime) -> None:
    db = runtime.db
    import_id, _ = planned(db, 3)
    with db.session() as session, pytest.raises(Conflict):
        import_apply.start(session, ADMIN, import_id)
    with db.session() as session, pytest.raises(Conflict):
        imports.discard(session, import_id)
