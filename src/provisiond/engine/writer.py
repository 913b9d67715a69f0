"""Write the outcomes of many tasks in one short transaction.

Account upserts, events and task closes are multi-row statements; run counters are added once
per run per batch. Every task transition is guarded by the lease: a task that is no longer
this worker's (its lease expired and another worker took it, or it was requeued) keeps what
happened to the account and the events of what was sent, but its transition is left to its
new owner. Retries and deferrals, which may fold into a newer queued task of the key, are
rare and written one by one (engine.queue).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from provisiond.engine import quarantine, queue, revocations, throttle
from provisiond.engine.outcomes import ENGINE_ACTOR, Outcome, Transition
from provisiond.engine.reader import groups_to_recheck
from provisiond.store import rollups
from provisiond.store.tables import Account, App, Event, PushedGroup, Run, Task, new_id

_CLOSED = {
    Transition.CLOSE: queue.SUCCEEDED,
    Transition.DISMISS: queue.DISMISSED,
    Transition.DEAD: queue.DEAD,
}


def owned_leases(session: Session, outcomes: Sequence[Outcome]) -> set[tuple[str, datetime]]:
    """The (task id, lease) of the outcomes whose task still runs under the lease it was
    claimed with (locked on PostgreSQL, so a lease release cannot slip in between this check
    and the write). By lease, not id: a task this worker claimed again after its lease ran
    out can have both copies in one batch, and only the newer one may write."""
    statement = _locked(_LEASES, _on_postgresql(session))
    session.flush()  # Core below: what the session holds is sent first, as session.execute would
    ids = sorted({o.task.id for o in outcomes})
    rows = session.connection().execute(statement, {"ids": ids})
    current = {
        task_id: (claimed_by, claimed_at)
        for task_id, status, claimed_by, claimed_at in rows
        if status == queue.RUNNING
    }
    return {
        (o.task.id, o.task.claimed_at)
        for o in outcomes
        if current.get(o.task.id) == (o.task.claimed_by, o.task.claimed_at)
    }


def _lease(outcome: Outcome) -> tuple[str, datetime]:
    return outcome.task.id, outcome.task.claimed_at


# The writer's statements are built once, with bound parameters (lists expanded): building a
# select and its cache key per batch cost as much as running it on SQLite.
_LEASES = select(Task.id, Task.status, Task.claimed_by, Task.claimed_at).where(
    Task.id.in_(bindparam("ids", expanding=True))
)


@lru_cache(maxsize=8)
def _locked(statement: Any, postgresql: bool) -> Any:
    """``statement`` taking row locks on PostgreSQL (parallel workers write the same rows),
    built once: SQLite has no row locks, its writer holds the whole database."""
    return statement.with_for_update() if postgresql else statement


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_PUSHING = (
    select(PushedGroup.app_id)
    .where(PushedGroup.app_id.in_(bindparam("apps", expanding=True)))
    .distinct()
)
_QUEUED_OF = select(Task.app_id, Task.subject_id).where(
    Task.subject_id.in_(bindparam("subjects", expanding=True)),
    Task.app_id.in_(bindparam("apps", expanding=True)),
    Task.status == queue.QUEUED,
)
_LAST_ERROR = (
    update(Account)
    .where(Account.app_id == bindparam("a"), Account.user_id == bindparam("u"))
    .values(last_error=bindparam("e"))
)
_CLOSE = (
    update(Task)
    .where(Task.id == bindparam("tid"))
    .values(
        status=bindparam("st"),
        updated_at=bindparam("now"),
        last_error=bindparam("err"),
        operation=bindparam("op"),
    )
)

_RELEASE_RUN = update(Task).where(Task.id == bindparam("tid")).values(run_id=None)
_OPERATION = update(Task).where(Task.id == bindparam("tid")).values(operation=bindparam("op"))


def write_outcomes(session: Session, outcomes: Sequence[Outcome], now: datetime) -> set[str]:
    """Write a batch; returns the ids of the tasks whose transition was written."""
    if not outcomes:
        return set()
    owned = owned_leases(session, outcomes)
    connection = session.connection()  # one for the transaction: each lookup costs
    for outcome in outcomes:
        if outcome.pause is not None:
            seconds, why = outcome.pause
            throttle.pause(session, outcome.task.app_id, seconds, why,
                           correlation_id=outcome.task.correlation_id, now=now)
        if outcome.quarantine is not None:
            quarantine.enter(session, outcome.task.app_id, outcome.quarantine,
                             correlation_id=outcome.task.correlation_id, now=now)
    _upsert_accounts(session, [o for o in outcomes if o.account is not None], now)
    revocations.record(session, [o for o in outcomes if o.readback is not None])
    errors = [o for o in outcomes if o.account_error is not None and _lease(o) in owned]
    if errors:
        connection.execute(
            _LAST_ERROR,
            [{"a": o.task.app_id, "u": o.task.subject_id, "e": o.account_error} for o in errors],
        )
    events = [row for o in outcomes for row in o.events]
    events += [row for o in outcomes if _lease(o) in owned for row in o.owned_events]
    if events:
        connection.execute(_INSERT_EVENT, events)
        rollups.add(session, events)
    closes = [o for o in outcomes if _lease(o) in owned and o.write.transition in _CLOSED]
    if closes:
        connection.execute(
            _CLOSE,
            [
                {
                    "tid": o.task.id,
                    "now": now,
                    "st": _CLOSED[o.write.transition].value,
                    "err": None if o.write.transition is Transition.CLOSE else o.write.error,
                    # The operation it sent; none when it found the account in sync.
                    "op": o.write.operation,
                }
                for o in closes
            ],
        )
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        if _lease(outcome) not in owned:
            continue
        write, task = outcome.write, outcome.task
        if write.transition is Transition.RETRY:
            assert write.at is not None
            queue.requeue(session, task, at=write.at, error=write.error)
            _set_operation(session, task.id, write.operation)
        elif write.transition is Transition.DEFER:
            assert write.at is not None
            if write.held_run is not None and not still_held(session, write.held_run):
                # Approved or cancelled since the snapshot (that approve or cancel did not see
                # this task, it was running): due again now, never parked behind a hold that
                # is over. The next run reads the outcome of the hold.
                queue.defer(session, task, at=now)
                if outcome.result is not None:
                    outcome.result.trace[-1] = {
                        "step": "held",
                        "detail": f"run {write.held_run} was approved or cancelled meanwhile",
                    }
                continue
            queue.defer(session, task, at=write.at)
        if write.outcome is not None and task.run_id:
            counts[task.run_id][write.outcome] += 1
            if write.release_run:
                connection.execute(_RELEASE_RUN, {"tid": task.id})
    for run_id, counted in sorted(counts.items()):
        count_outcomes(session, run_id, counted, now)
    changed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for outcome in outcomes:
        if outcome.state_changed:
            changed[(outcome.task.app_id, outcome.task.correlation_id)].add(
                outcome.task.subject_id
            )
    # Most apps push no group: which do is one statement for the batch, not one per app.
    pushing = _apps_pushing(session, {app_id for app_id, _ in changed})
    for (app_id, correlation_id), user_ids in sorted(changed.items()):
        if app_id not in pushing:
            continue
        # The groups pushed to the app that hold (or should hold) these users re-check.
        groups = groups_to_recheck(session, app_id, user_ids)
        if groups:
            queue.enqueue(
                session, app_id, sorted(groups), reason="app.account",
                correlation_id=correlation_id, kind="group",
            )
    return {task_id for task_id, _ in owned}


def _apps_pushing(session: Session, app_ids: set[str]) -> set[str]:
    """Those of these apps that have pushed groups."""
    if not app_ids:
        return set()
    return set(session.connection().execute(_PUSHING, {"apps": sorted(app_ids)}).scalars())


def successors_queued(session: Session, outcomes: Sequence[Outcome]) -> bool:
    """Whether a change queued a new task for any of these keys while they ran: the claim
    skipped it (its key was running), so the worker must look again now it is written."""
    keys = {(outcome.task.app_id, outcome.task.subject_id) for outcome in outcomes}
    if not keys:
        return False
    # One statement whatever the number of apps (a leaver's batch spans all of theirs; one
    # per app was a third of the write's time): the rows of the batch's subjects in the
    # batch's apps, matched to the keys here.
    session.flush()  # a requeue or a defer of this batch is in the session still
    queued = session.connection().execute(
        _QUEUED_OF,
        {
            "subjects": sorted({subject for _, subject in keys}),
            "apps": sorted({app_id for app_id, _ in keys}),
        },
    )
    return any((app_id, subject) in keys for app_id, subject in queued)


def _set_operation(session: Session, task_id: str, operation: str | None) -> None:
    if operation is not None:
        session.connection().execute(_OPERATION, {"tid": task_id, "op": operation})


_INSERT_EVENT = insert(Event)  # executemany: compiled once, whatever the batch


def _upsert_accounts(session: Session, outcomes: Sequence[Outcome], now: datetime) -> None:
    if not outcomes:
        return
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for outcome in outcomes:
        account = outcome.account
        assert account is not None
        rows[(outcome.task.app_id, outcome.task.subject_id)] = {
            "id": new_id(),
            "app_id": outcome.task.app_id,
            "user_id": outcome.task.subject_id,
            "remote_id": account.remote_id,
            "status": account.status,
            "applied": account.applied,
            "deactivated_at": account.deactivated_at,
            "fingerprint": account.fingerprint,
            "drift": account.drift,
            "last_synced_at": now,
            "last_error": None,
            "created_at": now,
        }
    statement = _upsert_account(session.get_bind().dialect.name)
    session.connection().execute(statement, list(rows.values()))


@lru_cache(maxsize=4)
def _upsert_account(dialect: str) -> Any:
    """One statement for any number of rows (executemany), so it is compiled once."""
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_(Account)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["app_id", "user_id"],
        set_={
            "remote_id": new.remote_id,
            "status": new.status,
            "applied": new.applied,
            "deactivated_at": new.deactivated_at,
            "fingerprint": new.fingerprint,
            # Only a write that read the app back says what drifted (engine.drift).
            "drift": func.coalesce(new.drift, Account.drift),
            "last_synced_at": new.last_synced_at,
            "last_error": None,
        },
    )


_RUN = select(Run.status, Run.total, Run.counts, Run.app_id, Run.actor, Run.kind).where(
    Run.id == bindparam("rid")
)
_RUN_STATUS = select(Run.status).where(Run.id == bindparam("rid"))
_COUNT = update(Run).where(Run.id == bindparam("rid")).values(counts=bindparam("c"))
_FINISH = (
    update(Run)
    .where(Run.id == bindparam("rid"))
    .values(counts=bindparam("c"), status=bindparam("st"), finished_at=bindparam("fin"))
)
_APP_NAME = select(App.name).where(App.id == bindparam("aid"))


def still_held(session: Session, run_id: str) -> bool:
    """Whether the run is held, read under a row lock on PostgreSQL: an approve or a cancel
    (which update the run) either commits first and is seen here, or waits for the caller's
    transaction and then sees what the caller wrote (a deferred task it makes due)."""
    statement = _locked(_RUN_STATUS, _on_postgresql(session))
    session.flush()  # Core below: what the session holds is sent first
    return session.connection().execute(statement, {"rid": run_id}).scalar() == "held"


def count_outcomes(
    session: Session, run_id: str, counted: Counter[str], now: datetime
) -> None:
    """Add tasks' outcomes to their run, closing the run when every task has an outcome.

    Core, not the ORM: loading the run as an object and flushing it back was a third of a
    batch's write (bench/RESULTS.md §18). The row is locked on PostgreSQL: parallel workers
    update the same counts."""
    statement = _locked(_RUN, _on_postgresql(session))
    session.flush()  # Core below: what the session holds is sent first
    connection = session.connection()
    run = connection.execute(statement, {"rid": run_id}).first()
    if run is None:
        return
    counts = dict(run.counts)
    for outcome, number in counted.items():
        counts[outcome] = counts.get(outcome, 0) + number
    stale = session.identity_map.get(identity_key(Run, run_id))
    if stale is not None:  # a caller holds the run as an object: it reads it again
        session.expire(stale)
    if run.status != "running" or sum(counts.values()) < run.total:
        connection.execute(_COUNT, {"rid": run_id, "c": counts})
        return
    status = "failed" if counts.get("failed") else "succeeded"
    connection.execute(_FINISH, {"rid": run_id, "c": counts, "st": status, "fin": now})
    app_name = connection.execute(_APP_NAME, {"aid": run.app_id}).scalar()
    summary = ", ".join(f"{value} {key}" for key, value in counts.items() if value)
    finished = {
        "time": now,
        "actor": run.actor or ENGINE_ACTOR,
        "action": "app.run.finish",
        "outcome": "success" if status == "succeeded" else "failure",
        "app_id": run.app_id,
        "user_id": None,
        "targets": {"run_id": run_id},
        "message": f"{'full sync' if run.kind == 'full' else f'{run.kind} run'} of "
        f"{app_name or run.app_id} {status}: {summary or 'nothing to do'}",
        "details": {"counts": counts},
        "correlation_id": run_id,
    }
    connection.execute(_INSERT_EVENT, [finished])
    rollups.add(session, [finished])
