"""The activity log's periodic job: retention, and on PostgreSQL its monthly partitions.

Every worker offers to run it (engine.upkeep, about once a minute); a leased row
(store.tables.PeriodicJob) lets exactly one process of the cluster run it at a time, and once
per EVERY: the claim is one conditional UPDATE, which one process wins. A process that dies
holding it leaves a lease that ends after LEASE, and the next offer runs it; a round missed
while no worker ran runs once, not once per missed interval.

A round, on PostgreSQL: create the months ahead (store.partitions), drop the months that are
past retention whole, and delete in chunks what the default partition holds past it. On SQLite:
delete past-retention events in chunks, each its own short transaction, so the worker's and the
API's writes go on between them. A round deletes at most MAX_CHUNKS chunks (the next round goes
on) and stops between chunks when its worker stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import column, delete, or_, select, table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from provisiond.config import Settings
from provisiond.store import partitions
from provisiond.store.db import Database
from provisiond.store.tables import PeriodicJob, UTCDateTime, utcnow

log = logging.getLogger("provisiond.retention")

JOB = "activity_log"
EVERY = timedelta(hours=1)
LEASE = timedelta(minutes=15)
RETRY = timedelta(minutes=5)  # after a failed round
CHUNK = 5000
MAX_CHUNKS = 200
_EVENTS = table("events", column("id"), column("time", UTCDateTime()))
_DEFAULT_PARTITION = table(partitions.DEFAULT, column("id"), column("time", UTCDateTime()))


def claim(session: Session, holder: str, now: datetime) -> bool:
    """Take the job if it is due and nobody holds a live lease on it."""
    insert_ = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert_(PeriodicJob)
        .values(name=JOB, due_at=now, last_result={})
        .on_conflict_do_nothing(index_elements=["name"])
    )
    taken = session.connection().execute(
        update(PeriodicJob)
        .where(
            PeriodicJob.name == JOB,
            PeriodicJob.due_at <= now,
            or_(PeriodicJob.lease_until.is_(None), PeriodicJob.lease_until < now),
        )
        .values(holder=holder, lease_until=now + LEASE)
    )
    return taken.rowcount == 1


def release(session: Session, holder: str, due_at: datetime, result: dict[str, Any]) -> None:
    session.execute(
        update(PeriodicJob)
        .where(PeriodicJob.name == JOB, PeriodicJob.holder == holder)
        .values(holder=None, lease_until=None, due_at=due_at, last_done_at=utcnow(),
                last_result=result)
    )


def run_if_due(
    db: Database, settings: Settings, holder: str, stopping: Callable[[], bool] = lambda: False
) -> dict[str, Any] | None:
    """Run a round if this process wins the job; what it did, or None if it did not run."""
    now = utcnow()
    with db.session() as session:
        if not claim(session, holder, now):
            return None
    try:
        result = run(db, settings, now=now, stopping=stopping)
    except Exception as exc:
        with db.session() as session:
            release(session, holder, now + RETRY, {"error": type(exc).__name__})
        raise
    with db.session() as session:
        release(session, holder, now + EVERY, result)
    if result["deleted"] or result["dropped"]:
        log.info("activity log retention: %s", result)
    return result


def run(
    db: Database,
    settings: Settings,
    *,
    now: datetime | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """One round (the caller holds the job); what it created, dropped and deleted."""
    now = now or utcnow()
    created: list[str] = []
    dropped: list[str] = []
    if db.is_postgres:
        with db.session() as session:
            created = partitions.ensure_ahead(session.connection(), now)
    cutoff = now - timedelta(days=settings.event_retention_days)
    if settings.event_retention_days == 0:
        return {"created": created, "dropped": dropped, "deleted": 0}
    if db.is_postgres:
        with db.session() as session:
            names = partitions.expired(session.connection(), cutoff)
        for name in names:
            with db.session() as session:  # one lock on the parent at a time, briefly
                partitions.drop(session.connection(), name)
            dropped.append(name)
    deleted = delete_before(db, cutoff, stopping=stopping)
    return {"created": created, "dropped": dropped, "deleted": deleted}


def delete_before(
    db: Database, cutoff: datetime, *, stopping: Callable[[], bool] = lambda: False
) -> int:
    """Delete events older than ``cutoff`` in chunks of CHUNK (on PostgreSQL only from the
    default partition: the months are dropped whole)."""
    target = _DEFAULT_PARTITION if db.is_postgres else _EVENTS
    deleted = 0
    for _ in range(MAX_CHUNKS):
        if stopping():
            break
        with db.session() as session:
            oldest = (
                select(target.c.id).where(target.c.time < cutoff).order_by(target.c.time)
                .limit(CHUNK).scalar_subquery()
            )
            count = session.connection().execute(delete(target).where(target.c.id.in_(oldest))).rowcount
        deleted += int(count or 0)
        if not count or count < CHUNK:
            break
    return deleted
