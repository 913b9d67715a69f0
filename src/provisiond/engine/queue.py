"""The durable task queue: enqueue in the caller's transaction, claim with SKIP LOCKED.

A change and the tasks it causes commit together (transactional outbox), so a crash can never
lose a deprovisioning. Tasks are keys (app, user), coalesced: at most one queued task a key, and
a key never runs twice at once, so operations on one account stay in order across workers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, and_, bindparam, case, cast, exists, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from provisiond.store.tables import App, AppPause, Task, new_id, utcnow


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    DISMISSED = "dismissed"
    SUPERSEDED = "superseded"  # folded into a newer queued task of the same key


QUEUED, RUNNING, SUCCEEDED, DEAD, DISMISSED, SUPERSEDED = (
    TaskStatus.QUEUED,
    TaskStatus.RUNNING,
    TaskStatus.SUCCEEDED,
    TaskStatus.DEAD,
    TaskStatus.DISMISSED,
    TaskStatus.SUPERSEDED,
)
NOTIFY_CHANNEL = "provisiond_tasks"
# How long a claim by something without a heartbeat row (provisioning on demand) is kept
# before the task is taken for abandoned; a worker's claims last while it beats
# (engine.liveness).
LEASE = timedelta(minutes=5)
_ENQUEUE_CHUNK = 1000  # rows per executemany; the driver sends them as a few multi-row INSERTs


def enqueue(
    session: Session,
    app_id: str,
    subject_ids: Iterable[str],
    *,
    reason: str,
    correlation_id: str,
    run_id: str | None = None,
    verify_remote: bool = False,
    kind: str = "user",
    priority: int | None = None,
) -> list[str]:
    """Queue a reconcile of each (app, subject); returns the ids of the tasks that carry ``run_id``.

    ``kind="user"``: the subjects are users (their accounts); ``kind="group"``: directory groups
    (their pushed counterparts, engine.groups).

    An existing queued task for the same key is made due now instead of queuing a second one.
    Many keys cost a few multi-row statements, not one each: a group of 10,000 assigned to an
    app queues its tasks in a handful of multi-row statements, compiled once.
    """
    return enqueue_keys(
        session,
        [(app_id, subject_id) for subject_id in subject_ids],
        reason=reason,
        correlation_id=correlation_id,
        run_id=run_id,
        verify_remote=verify_remote,
        kind=kind,
        priority=priority,
    )


def enqueue_keys(
    session: Session,
    keys: Iterable[tuple[str, str]],
    *,
    reason: str,
    correlation_id: str,
    run_id: str | None = None,
    verify_remote: bool = False,
    kind: str = "user",
    priority: int | None = None,
) -> list[str]:
    """:func:`enqueue` for (app, subject) keys of any number of apps, in the same few
    statements: a leaver's change queues a task in each of their apps with one executemany."""
    now = utcnow()
    priority = priority_of(reason, run_id) if priority is None else priority
    dialect = session.get_bind().dialect.name
    # One row per key: PostgreSQL refuses an upsert that touches a row twice.
    unique = list(dict.fromkeys(keys))
    if not unique:
        return []
    rows = [
        {
            "id": new_id(),
            "app_id": app_id,
            "kind": kind,
            "subject_id": subject_id,
            "run_id": run_id,
            "reason": reason,
            "verify_remote": verify_remote,
            "priority": priority,
            "status": QUEUED.value,
            "attempts": 0,
            "next_attempt_at": now,
            "correlation_id": correlation_id,
            "created_at": now,
            "updated_at": now,
        }
        for app_id, subject_id in unique
    ]
    attached: list[str] = []
    connection = session.connection()
    for start in range(0, len(rows), _ENQUEUE_CHUNK):
        result = connection.execute(_upsert(dialect), rows[start : start + _ENQUEUE_CHUNK])
        if run_id:
            attached += [row.id for row in result if row.run_id == run_id]
    session.info["tasks_enqueued"] = True
    if dialect == "postgresql":
        # Delivered on commit only: workers on other hosts wake exactly when the tasks exist.
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return attached


@lru_cache(maxsize=4)
def _upsert(dialect: str) -> Any:
    """The enqueue upsert, built once: executed with many rows at a time (executemany), it is
    compiled once, where a multi-row VALUES of 10,000 keys took seconds to build."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Task)
    new = statement.excluded
    # One atomic upsert, not "insert, else select and update": between a select and an update
    # a worker may claim the queued row, and the change would ride on a task whose snapshot was
    # taken before it (PostgreSQL re-checks the conflict instead).
    return statement.on_conflict_do_update(
        index_elements=["app_id", "subject_id"],
        index_where=text("status = 'queued'"),
        set_={
            "next_attempt_at": new.next_attempt_at,
            "reason": new.reason,
            "updated_at": new.updated_at,
            "verify_remote": Task.verify_remote | new.verify_remote,
            "priority": case((Task.priority < new.priority, Task.priority), else_=new.priority),
            "run_id": func.coalesce(Task.run_id, new.run_id),
        },
    ).returning(Task.id, Task.run_id)  # unordered: the rows are sent in batches, not one by one


LIFECYCLE_REASONS = ("user.lifecycle.", "user.delete")


def priority_of(reason: str, run_id: str | None) -> int:
    """A person's lifecycle change goes first: a leaver must not wait behind a bulk import."""
    if reason.startswith(LIFECYCLE_REASONS):
        return 0
    return 2 if run_id else 1


@dataclass(frozen=True)
class Claimed:
    """A task as the worker holds it: its key, its change, and the lease it was claimed with."""

    id: str
    app_id: str
    kind: str
    subject_id: str  # a user id, or a directory group id for ``kind="group"``
    run_id: str | None
    reason: str
    priority: int
    attempts: int
    verify_remote: bool
    correlation_id: str
    created_at: datetime
    updated_at: datetime  # when the change it carries was queued (kept by claims and retries)
    claimed_by: str
    claimed_at: datetime  # the lease: every write at the end checks it is still this one

    @classmethod
    def of(cls, task: Task) -> Claimed:
        """The claimed task an ORM row holds (provisioning on demand, group tasks)."""
        assert task.claimed_by is not None and task.claimed_at is not None
        return cls(
            id=task.id, app_id=task.app_id, kind=task.kind, subject_id=task.subject_id,
            run_id=task.run_id, reason=task.reason, priority=task.priority,
            attempts=task.attempts, verify_remote=task.verify_remote,
            correlation_id=task.correlation_id, created_at=task.created_at,
            updated_at=task.updated_at, claimed_by=task.claimed_by, claimed_at=task.claimed_at,
        )


def claim(
    session: Session,
    worker_id: str,
    limit: int,
    now: datetime | None = None,
    *,
    skip_apps: Iterable[str] = (),
    room: Mapping[str, int] | None = None,
    default_room: int | None = None,
    urgent_only: bool = False,
    cluster: bool = False,
) -> list[Claimed]:
    """Take up to ``limit`` due tasks whose key is not running elsewhere, in one statement.

    Highest priority first, then oldest. Fair across apps: ``skip_apps`` have no room at all,
    and no app gets more than its ``room`` (``default_room`` for apps not listed) in one claim,
    so one app's backlog neither starves the others nor fills the worker. ``urgent_only``
    takes only lifecycle tasks (priority 0), for the capacity kept for deprovisionings.

    ``cluster`` (PostgreSQL, several workers): an app's concurrency holds across the cluster.
    A task sends at most one request at a time and only while it is running, so no more of an
    app's tasks run anywhere than its concurrency; claims are serialised by an advisory lock
    held to the end of the caller's transaction, so two workers claiming at once cannot both
    see the same free room.
    """
    if limit <= 0:
        return []
    dialect = session.get_bind().dialect.name
    cluster = cluster and dialect == "postgresql"
    if cluster:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK})
    statement = _claim_statement(dialect, urgent_only, cluster)
    # Apps without room are left out of the candidates, not only capped: their backlog
    # would otherwise fill the window and hide every other app's tasks.
    skipped = sorted(set(skip_apps) | {app_id for app_id, n in (room or {}).items() if n <= 0})
    rooms = {app_id: n for app_id, n in (room or {}).items() if n > 0}
    parameters = {
        "skip": skipped,
        "now": now or utcnow(),
        "worker_id": worker_id,
        "limit": limit,
        "window": limit * 4,
        "rooms": json.dumps(rooms),
        "default_room": default_room if default_room is not None else limit,
    }
    # Through the connection, not the session: the ORM's bulk-update path (its compile state,
    # session synchronisation) cost a third of a claim on top of SQLite's own work (py-spy,
    # bench/RESULTS.md §15); the worker's session holds no Task objects to keep in step.
    session.flush()  # what the session's autoflush did: pending rows are seen
    rows = session.connection().execute(statement, parameters)
    claimed = [Claimed(**row._asdict()) for row in rows]
    claimed.sort(key=lambda task: (task.priority, task.created_at))
    return claimed


# The advisory lock that serialises cluster claims (any constant unique to provisiond).
CLAIM_LOCK = 0x70726F76  # "prov"
DEFAULT_CONCURRENCY = 4  # domain.apps.ProvisioningSettings.concurrency's default


@lru_cache(maxsize=8)
def _claim_statement(dialect: str, urgent_only: bool, cluster: bool = False) -> Any:
    """The claim, built once per dialect: its inputs are all bound parameters, so it is compiled
    once too (building and compiling it was most of a claim's cost)."""
    running = aliased(Task)
    busy = exists().where(
        and_(
            running.app_id == Task.app_id,
            running.subject_id == Task.subject_id,
            running.status == RUNNING,
        )
    )
    order = (Task.priority, Task.next_attempt_at, Task.created_at)
    due = select(Task.id, Task.app_id, *order).where(
        Task.status == QUEUED,
        Task.next_attempt_at <= bindparam("now"),
        Task.app_id.not_in(bindparam("skip", expanding=True)),
        # An app that asked to slow down (429) is paused for every worker (engine.throttle).
        # Quarantined apps wait for a probe to pass (engine.quarantine).
        Task.app_id.not_in(
            select(AppPause.app_id).where(
                (AppPause.until > bindparam("now")) | (AppPause.kind == "quarantine")
            )
        ),
        ~busy,
    )
    if urgent_only:
        due = due.where(Task.priority == 0)
    # Look a little past ``limit`` so that apps capped by their room leave it to others.
    due = due.order_by(*order).limit(bindparam("window"))
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True, of=Task)
        rooms = func.jsonb_each_text(cast(bindparam("rooms"), JSONB)).table_valued("key", "value")
        room_value: Any = cast(rooms.c.value, Integer)
    else:
        rooms = func.json_each(bindparam("rooms")).table_valued("key", "value")
        room_value = rooms.c.value
    candidates = due.subquery("candidates")
    rank = (
        func.row_number()
        .over(
            partition_by=candidates.c.app_id,
            order_by=(
                candidates.c.priority,
                candidates.c.next_attempt_at,
                candidates.c.created_at,
            ),
        )
        .label("app_rank")
    )
    ranked = select(candidates, rank).subquery("ranked")
    cap: Any = func.coalesce(
        select(room_value).where(rooms.c.key == ranked.c.app_id).scalar_subquery(),
        bindparam("default_room"),
    )
    if cluster:
        # What the app may still run: its concurrency (as stored now) less its tasks running
        # on any worker (this statement's own claims are not among them yet).
        elsewhere = aliased(Task)
        running_now = (
            select(func.count())
            .where(elsewhere.app_id == ranked.c.app_id, elsewhere.status == RUNNING)
            .scalar_subquery()
        )
        concurrency = func.coalesce(
            select(App.provisioning["concurrency"].as_integer())
            .where(App.id == ranked.c.app_id)
            .scalar_subquery(),
            DEFAULT_CONCURRENCY,
        )
        cap = func.least(cap, concurrency - running_now)
    chosen = (
        select(ranked.c.id)
        .where(ranked.c.app_rank <= cap)
        .order_by(ranked.c.priority, ranked.c.next_attempt_at, ranked.c.created_at)
        .limit(bindparam("limit"))
    )
    # The guard that a chosen row is still queued (PostgreSQL re-checks it on a row another
    # transaction changed), kept off ``ix_tasks_due`` on SQLite: the ids are looked up by
    # primary key, not every queued row tested against them.
    status = status_off_index(dialect)
    # ``updated_at`` is left alone: it says when the change this task carries was queued,
    # which a held run's cancel reads to tell its own tasks from later ones.
    return (
        update(Task)
        .where(Task.id.in_(chosen.scalar_subquery()), status == QUEUED)
        .values(
            status=RUNNING.value,
            claimed_by=bindparam("worker_id"),
            claimed_at=bindparam("now"),
            attempts=Task.attempts + 1,
        )
        .returning(
            Task.id,
            Task.app_id,
            Task.kind,
            Task.subject_id,
            Task.run_id,
            Task.reason,
            Task.priority,
            Task.attempts,
            Task.verify_remote,
            Task.correlation_id,
            Task.created_at,
            Task.updated_at,
            Task.claimed_by,
            Task.claimed_at,
        )
    )


def status_off_index(dialect: str) -> Any:
    """``tasks.status`` that SQLite's planner will not look up by index (a unary plus,
    sqlite.org/optoverview.html), for statements whose other terms find the rows by a better
    one: ``status = ?`` alone made it walk ``ix_tasks_due`` over every row of that status.
    PostgreSQL's planner weighs the two with statistics (and has no unary plus for text)."""
    column = Task.__table__.c.status
    if dialect == "postgresql":
        return column
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def pending_subjects(session: Session, app_id: str, subject_ids: Iterable[str]) -> set[str]:
    """The subjects of these that have a task queued or running in the app."""
    found: set[str] = set()
    ordered = sorted(set(subject_ids))
    for start in range(0, len(ordered), 900):
        found |= set(
            session.scalars(
                select(Task.subject_id).where(
                    Task.app_id == app_id,
                    Task.status.in_([QUEUED.value, RUNNING.value]),
                    Task.subject_id.in_(ordered[start : start + 900]),
                )
            )
        )
    return found


def next_due(session: Session, after: datetime | None = None) -> datetime | None:
    """When the next queued task is due (of those due after ``after``, when given)."""
    if after is None:
        return session.scalar(_NEXT_DUE)
    return session.scalar(_NEXT_DUE_AFTER, {"after": after})


# Asked after every claim: built once (with its cache key), not per call.
_NEXT_DUE = (
    select(Task.next_attempt_at)
    .where(Task.status == QUEUED)
    .order_by(Task.next_attempt_at)
    .limit(1)
)
_NEXT_DUE_AFTER = _NEXT_DUE.where(Task.next_attempt_at > bindparam("after"))


def _row(session: Session, task: Task | Claimed | str) -> Task:
    if isinstance(task, Task):
        return task
    row = session.get(Task, task if isinstance(task, str) else task.id)
    assert row is not None, "a claimed task is only removed with its app, under its lease"
    return row


def requeue(
    session: Session, task: Task | Claimed | str, *, at: datetime, error: str | None
) -> None:
    """Put a running task back in the queue, or fold it into a newer queued task of its key."""
    task = _row(session, task)
    task.last_error = error  # ``updated_at`` kept: still the change it was (see ``claim``)
    newer = session.scalars(
        select(Task).where(
            Task.app_id == task.app_id,
            Task.subject_id == task.subject_id,
            Task.status == QUEUED,
            Task.id != task.id,
        )
    ).first()
    if newer is not None:
        # Level-based: the newer task reconciles the same key, so this one is superseded.
        task.status = SUPERSEDED
        newer.next_attempt_at = min(newer.next_attempt_at, at)
        if task.run_id and newer.run_id is None:
            newer.run_id, task.run_id = task.run_id, None
        return
    task.status = QUEUED
    task.next_attempt_at = at
    task.claimed_by = None


def defer(session: Session, task: Task | Claimed | str, *, at: datetime) -> None:
    """Put a claimed task back untouched (its attempt undone, its ``updated_at`` kept, so that
    it still reads as the change it was), or fold it into a newer queued task of its key."""
    task = _row(session, task)
    newer = session.scalars(
        select(Task).where(
            Task.app_id == task.app_id,
            Task.subject_id == task.subject_id,
            Task.status == QUEUED,
            Task.id != task.id,
        )
    ).first()
    if newer is not None:
        task.status = SUPERSEDED
        return
    task.status, task.claimed_by, task.next_attempt_at = QUEUED, None, at
    task.attempts = max(0, task.attempts - 1)


def backoff(attempts: int, base: float, ceiling: float, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; a target's Retry-After is a floor, never ignored."""
    delay = random.uniform(0, min(ceiling, base * 2 ** max(0, attempts - 1)))
    delay = min(max(delay, base / 2), ceiling)  # the floor never lifts it past the ceiling
    if retry_after is not None:
        delay = max(delay, min(retry_after, ceiling))
    return delay


def retry(session: Session, task_ids: Sequence[str]) -> None:
    session.execute(
        update(Task)
        .where(Task.id.in_(task_ids))
        .values(
            status=QUEUED,
            attempts=0,
            next_attempt_at=utcnow(),
            last_error=None,
            updated_at=utcnow(),
        )
    )
    session.info["tasks_enqueued"] = True
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
