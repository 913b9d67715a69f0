"""A CSV import interrupted while it is applied (its process gone) is resumed by another
process, applying each row once; a live applier's import is never taken, and an applier that
lost its lease stops before changing anything."""

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


def planned(db: Database, rows: int) -> str:
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
        import_apply.start(session, ADMIN, import_id)
    return import_id


def users(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)


def expire(db: Database, import_id: str) -> None:
    with db.session() as session:
        session.get(UserImport, import_id).lease_until = utcnow() - timedelta(seconds=1)


def test_an_interrupted_import_is_resumed_and_applies_each_row_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = runtime.db
    monkeypatch.setattr(imports, "CHUNK", 10)
    import_id = planned(db, 35)
    # The first applier does one chunk and dies (no further transaction of its own).
    assert import_apply._apply_chunk(db, ADMIN, import_id, import_apply.APPLIER)
    assert users(db) == 10

    assert import_apply.resume_stalled(db, "other:1:x") == []  # its lease is still running
    expire(db, import_id)
    taken = import_apply.resume_stalled(db, "other:1:x")
    assert taken == [import_id]
    assert import_apply.resume_stalled(db, "third:1:y") == []  # taken once
    for thread in threading.enumerate():
        if thread.name == f"import-{import_id[:8]}":
            thread.join(60)

    with db.session() as session:
        imported = session.get(UserImport, import_id)
        assert imported.status == "succeeded", imported.errors
        assert {k: n for k, n in imported.done.items() if n} == {"create": 35}
        assert imported.applier == "other:1:x" and imported.lease_until is None
        kinds = list(session.scalars(
            select(Event.action).where(Event.action.like("user.import.%")).order_by(Event.id)
        ))
        assert kinds == ["user.import.read", "user.import.start", "user.import.resume",
                         "user.import.finish"]
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
    import_id = planned(db, 25)
    expire(db, import_id)
    with db.session() as session:  # taken over, as resume_stalled would (without its thread)
        imported = session.get(UserImport, import_id)
        imported.applier, imported.lease_until = "other:1:x", utcnow() + import_apply.LEASE

    import_apply.apply(db, ADMIN, import_id)  # the stalled first applier wakes up
    assert users(db) == 0
    with db.session() as session:
        imported = session.get(UserImport, import_id)
        assert imported.status == "applying" and not any(imported.done.values())
    import_apply.apply(db, ADMIN, import_id, "other:1:x")
    with db.session() as session:
        assert session.get(UserImport, import_id).status == "succeeded"
    assert users(db) == 25


def test_an_import_being_applied_cannot_be_discarded_or_started_again(runtime: Runtime) -> None:
    db = runtime.db
    import_id = planned(db, 3)
    with db.session() as session, pytest.raises(Conflict):
        import_apply.start(session, ADMIN, import_id)
    with db.session() as session, pytest.raises(Conflict):
        imports.discard(session, import_id)
