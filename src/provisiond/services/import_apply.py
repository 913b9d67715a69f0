"""CSV import of users, second half: apply a planned import, a chunk at a time, with live counts.

Every change goes through services/directory.py (validation, events, tasks in the same
transaction). Each chunk of rows is one transaction, and each row a savepoint in it: a row that
no longer applies (its login taken meanwhile, a group deleted) is recorded as failed with its
line and loses nothing else. The chunk's reconciles are queued together, one change per app
(``directory.gather_reconciles``), so an app's safety limit sees a chunk as one change; the
deactivations of users missing from the file are one transaction and one change per app, so a
mass deactivation by file is held like any other. Rows are marked done in the transaction that
applies them: an import interrupted by a restart applies no row twice.

The process applying an import holds a lease on it (``applier``, ``lease_until``), renewed as
the first statement of each of its transactions, under the import row's lock: a process that
lost the lease (it stalled past ``LEASE`` and another took over) stops before changing
anything. An import whose lease ran out was interrupted (the process died, the host restarted)
and :func:`resume_stalled` — each scheduler tick, beside every worker — takes it over and
applies the rows still pending.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from provisiond.domain.directory import Lifecycle, Profile, UserStatus
from provisiond.errors import Conflict, Invalid, ProvisiondError
from provisiond.services import activity, directory, imports
from provisiond.services.context import SYSTEM, Actor
from provisiond.store.db import Database
from provisiond.store.tables import ImportRow, User, UserImport, utcnow

log = logging.getLogger(__name__)
REASON = "user.import"
# Far longer than a chunk takes (seconds), so only a stopped applier loses its import.
LEASE = timedelta(minutes=2)
# An import interrupted longer ago than this is not resumed: its rows were planned against the
# directory as it was when the file was read, and applying them now could deactivate people
# reactivated since. It is marked failed (read the file again).
RESUME_WITHIN = timedelta(hours=1)
# This process: host and pid (a pid is reused after a restart, hence each applier's nonce).
PROCESS = f"{socket.gethostname()[:40]}:{os.getpid()}"


def new_applier() -> str:
    """An id for one thread applying one import: never shared, so a thread that stalled past
    its lease loses it even to a thread of its own process."""
    return f"{PROCESS}:{uuid.uuid4().hex[:12]}"


class LeaseLost(Exception):
    """Another process took the import over: this one stops, having changed nothing."""


def start(session: Session, actor: Actor, import_id: str) -> UserImport:
    """Mark a ``ready`` import as applying (refused otherwise); the caller then runs
    :func:`apply` (``in_background``) once this transaction commits."""
    imported = imports.get_import(session, import_id)
    if imported.status != "ready":
        raise Conflict(
            f"only a ready import can be applied; this one is {imported.status}"
            + (" (fix the rows listed in its errors, or read the file with skip_invalid)"
               if imported.status == "invalid" else ""),
            current_status=imported.status,
        )
    imported.status = "applying"
    imported.applier, imported.lease_until = new_applier(), utcnow() + LEASE
    activity.record(
        session, actor, "user.import.start",
        f"applying import {imported.id} of {imported.filename or 'a CSV file'}",
        targets={"import_id": imported.id}, details={"planned": imported.planned},
    )
    return imported


def in_background(db: Database, actor: Actor, import_id: str, applier: str) -> threading.Thread:
    """Apply the import on a thread of its own, as ``applier`` (the import's, from
    :func:`start` or :func:`resume_stalled`)."""
    thread = threading.Thread(
        target=apply, args=(db, actor, import_id, applier), name=f"import-{import_id[:8]}",
        daemon=True,
    )
    thread.start()
    return thread


def resume_stalled(db: Database) -> list[str]:
    """Take over every import being applied whose applier's lease ran out, and apply the rest
    of each in the background; the ids taken. Each takeover is one conditional update, so two
    processes resuming at once cannot both take one import. An import interrupted longer ago
    than ``RESUME_WITHIN`` is marked failed instead."""
    now = utcnow()
    expired = or_(UserImport.lease_until.is_(None), UserImport.lease_until < now)
    taken: list[tuple[str, str, str]] = []  # import, applier, admin
    with db.session() as session:
        stalled = list(session.scalars(
            select(UserImport).where(UserImport.status == "applying", expired)
        ))
        for imported in stalled:
            # When the applier last renewed (a lease is taken for LEASE); None: from before
            # leases existed (migration 0029 fails those), so not known to be recent.
            renewed = imported.lease_until - LEASE if imported.lease_until else None
            applier = new_applier()
            claimed = session.execute(
                update(UserImport)
                .where(UserImport.id == imported.id, UserImport.status == "applying", expired)
                .values(applier=applier, lease_until=now + LEASE)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another process took it first
            session.refresh(imported)
            applied = sum(v for k, v in imported.done.items() if k != "failed")
            what = f"import {imported.id} of {imported.filename or 'a CSV file'}"
            if renewed is None or now - renewed > RESUME_WITHIN:
                message = (f"the import was interrupted after {applied} rows and not resumed "
                           f"within {RESUME_WITHIN}: read the file again")
                _failed(imported, message)
                activity.record(
                    session, SYSTEM, "user.import.resume", f"not resuming {what}: {message}",
                    outcome="failure", targets={"import_id": imported.id},
                    details={"done": imported.done},
                )
                continue
            activity.record(
                session, SYSTEM, "user.import.resume",
                f"resuming {what}, interrupted after {applied} of "
                f"{sum(imported.planned.values())} rows",
                targets={"import_id": imported.id}, details={"done": imported.done},
            )
            taken.append((imported.id, applier, imported.actor))
    for import_id, applier, admin in taken:  # the rows keep the name of the admin who applied
        in_background(db, Actor(admin), import_id, applier)
    return [import_id for import_id, _, _ in taken]


def _failed(imported: UserImport, message: str) -> None:
    """End the import as failed, saying why beside its rows' errors (no line: the whole file)."""
    imports.finish(imported, "failed")
    imported.errors = {"items": [*imported.errors.get("items", []),
                                 {"line": None, "message": message}]}


def _renew(session: Session, import_id: str, applier: str) -> None:
    """Extend this applier's lease, first in a transaction: the row stays locked until it
    commits, so no other process can take the import over in between."""
    renewed = session.execute(
        update(UserImport)
        .where(UserImport.id == import_id, UserImport.applier == applier,
               UserImport.status == "applying")
        .values(lease_until=utcnow() + LEASE)
    )
    if renewed.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(import_id)


def apply(db: Database, actor: Actor, import_id: str, applier: str) -> None:
    """Apply every pending row of an ``applying`` import, then its deactivations."""
    try:
        while _apply_chunk(db, actor, import_id, applier):
            pass
        with db.session() as session:
            _renew(session, import_id, applier)
            _apply_deactivations(session, actor, import_id)
            imported = imports.get_import(session, import_id)
            imports.finish(imported, "succeeded")
            imports.drop_rows(session, import_id)
            activity.record(
                session, actor, "user.import.finish",
                f"applied import {import_id}: "
                + ", ".join(f"{n} {a}" for a, n in imported.done.items() if n),
                outcome="failure" if imported.done.get("failed") else "success",
                targets={"import_id": import_id}, details={"done": imported.done},
            )
    except LeaseLost:
        log.info("import %s was taken over by another process", import_id)
    except Exception as exc:  # the thread's end: say so on the import, never die silently
        log.exception("import %s stopped", import_id)
        with db.session() as session:
            try:
                _renew(session, import_id, applier)
            except LeaseLost:  # another process applies it now: its failure is not ours
                return
            imported = imports.get_import(session, import_id)
            _failed(imported, f"the import stopped: {exc}")


def _pending(session: Session, import_id: str, *, deactivations: bool, limit: int) -> list[ImportRow]:
    statement = select(ImportRow).where(
        ImportRow.import_id == import_id, ImportRow.state == "pending"
    )
    statement = statement.where(
        ImportRow.action == "deactivate" if deactivations else ImportRow.action != "deactivate"
    )
    return list(session.scalars(statement.order_by(ImportRow.seq).limit(limit)))


def _apply_chunk(db: Database, actor: Actor, import_id: str, applier: str) -> bool:
    """Apply the next chunk of the file's rows; False when none is left."""
    with db.session() as session:
        _renew(session, import_id, applier)
        rows = _pending(session, import_id, deactivations=False, limit=imports.CHUNK)
        if not rows:
            return False
        groups = imports.group_index(session)
        done: dict[str, int] = {}
        chunk: dict[str, set[str]] = {}
        joining: dict[str, list[str]] = {}
        for row in rows:
            gathered = directory.gather_reconciles(session)
            savepoint = session.begin_nested()
            joins: dict[str, list[str]] = {}
            try:
                outcome = _apply_row(session, actor, row.values or {}, groups, joins)
            except (ProvisiondError, ValidationError) as exc:
                savepoint.rollback()
                message = _message(exc)
                row.state, row.error = "failed", message
                done["failed"] = done.get("failed", 0) + 1
                _keep_error(session, import_id, row.line, message)
                continue
            savepoint.commit()
            for app_id, users in gathered.items():
                chunk.setdefault(app_id, set()).update(users)
            for group_id, joiners in joins.items():
                joining.setdefault(group_id, []).extend(joiners)
            row.state = "done"
            done[outcome] = done.get(outcome, 0) + 1
        joined = directory.gather_reconciles(session)
        for group_id in sorted(joining):  # the groups were checked row by row, just now
            directory.add_members(session, actor, group_id, joining[group_id])
        for app_id, members in joined.items():
            chunk.setdefault(app_id, set()).update(members)
        directory.queue_gathered(session, actor, chunk, REASON)
        _count(session, import_id, done)
        return True


def _apply_row(
    session: Session,
    actor: Actor,
    values: dict[str, Any],
    groups: dict[str, tuple[str, str | None]],
    joining: dict[str, list[str]],
) -> str:
    """``create``, ``update`` or ``unchanged``: what this row did, through the directory. The
    groups the user joins are left in ``joining`` (group id -> user ids), for the chunk to add
    at once: a group's apps are then found and reconciled once, not once a row."""
    login = str(values["login"])
    profile: dict[str, Any] = dict(values.get("profile") or {})
    user = session.scalar(select(User).where(User.login_key == directory.login_key(login)))
    outcome = "unchanged"
    if user is None:
        present = {k: v for k, v in profile.items() if v is not None}
        user = directory.create_user(
            session, actor, Profile.model_validate(present), activate=True
        )
        outcome = "create"
    else:
        before = dict(user.profile)
        changes = {k: v for k, v in profile.items() if k != "login"}
        directory.update_user(session, actor, user.id, changes)
        if user.profile != before:
            outcome = "update"
    names = values.get("groups")
    current: set[str] | None = set() if outcome == "create" else None  # new: in no group
    if names is not None and _set_groups(session, actor, user.id, names, groups, joining, current):
        outcome = "update" if outcome == "unchanged" else outcome
    return outcome


def _set_groups(
    session: Session,
    actor: Actor,
    user_id: str,
    names: list[str],
    groups: dict[str, tuple[str, str | None]],
    joining: dict[str, list[str]],
    current: set[str] | None,
) -> bool:
    """Make the user's hand-made direct memberships exactly ``names`` (the groups joined are
    left in ``joining``); whether any changes."""
    wanted: set[str] = set()
    for name in names:
        found = groups.get(name.casefold())
        if found is None:
            raise Invalid(f"groups: no group named {name!r}", field="groups")
        if found[1] is not None:
            raise Conflict(f"groups: the members of {name!r} are set by its rule")
        wanted.add(found[0])
    if current is None:
        current = imports.manual_groups(session, [user_id]).get(user_id, set())
    for group_id in sorted(wanted - current):
        joining.setdefault(group_id, []).append(user_id)
    for group_id in sorted(current - wanted):
        directory.remove_member(session, actor, group_id, user_id)
    return wanted != current


def _apply_deactivations(session: Session, actor: Actor, import_id: str) -> None:
    """Deactivate the users missing from the file, in one transaction: one change per app."""
    gathered = directory.gather_reconciles(session)
    done: dict[str, int] = {}
    while rows := _pending(session, import_id, deactivations=True, limit=2000):
        for row in rows:
            user = session.get(User, row.user_id) if row.user_id else None
            row.state = "done"
            if user is None or user.status == UserStatus.DEPROVISIONED.value:
                done["unchanged"] = done.get("unchanged", 0) + 1
                continue
            directory.change_lifecycle(session, actor, user.id, Lifecycle.DEACTIVATE)
            done["deactivate"] = done.get("deactivate", 0) + 1
        session.flush()
    directory.queue_gathered(session, actor, gathered, REASON)
    _count(session, import_id, done)


def _count(session: Session, import_id: str, done: dict[str, int]) -> None:
    imported = imports.get_import(session, import_id)
    imported.done = {k: imported.done.get(k, 0) + done.get(k, 0) for k in {*imported.done, *done}}


def _keep_error(session: Session, import_id: str, line: int | None, message: str) -> None:
    imported = imports.get_import(session, import_id)
    imported.error_count += 1
    items = list(imported.errors.get("items", []))
    if len(items) < imports.MAX_ERRORS_KEPT:
        imported.errors = {"items": [*items, {"line": line, "message": message}]}


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'profile'}: {first['msg']}"
    return str(exc)
