"""Rollups of the activity log (store.tables.EventRollup): counts per day, app, action, outcome.

/metrics reads these few rows instead of scanning millions of events. They are kept on write:
events added to a session (``session.add(Event(...))``, store.events) are tallied as they are
flushed, a multi-row insert of events (engine.writer) tallies its rows with ``add``, and the
tally is written as one sorted multi-row upsert just before the transaction commits. So the
counts are exactly the events committed with them (a rolled-back transaction takes both back),
and, sorted and last in every transaction, the upsert locks its rows in one order in every
process and holds them only while committing: workers counting the same app's operations
queue briefly on a row, never deadlock on two.

A successful deprovisioning also counts into the latency histogram bucket it falls in
(``bucket``, -1 for every other event) and adds its latency to the sum: the rows are then the
histogram /metrics exposes. Beside each day's rows, rows of day ALL_TIME count every event ever
written: /metrics reads those. Rollups outlive the events' retention (a day is at most apps x
actions x outcomes rows), so /metrics' counters never go back when old events are dropped;
and the ALL_TIME rows name every action the log holds, which lets /logs turn an action prefix
into the exact actions it matches (``actions``).

A savepoint keeps a copy of the tally as it began: rolled back, the tally is what it was, as
the events are (services.impact tries changes in one).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import event, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from provisiond.store.tables import Event, EventRollup, utcnow

DEPROVISION = "app.user.deprovision"
# The deprovisioning latency histogram's upper bounds (seconds; /metrics' ``le`` labels).
LATENCY_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
LATENCY_BOUNDS_MS = tuple(round(bound * 1000) for bound in LATENCY_BUCKETS_SECONDS)
NO_BUCKET = -1
NO_APP = ""  # a primary key column cannot be NULL; events of no app count under ''
# The day of the rows that count every event of all time: /metrics' counters read these few
# rows (apps x actions x outcomes), not a year of days.
ALL_TIME = date(1, 1, 1)

_TALLY = "provisiond.rollups"
Key = tuple[date, str, str, str, int]


def bucket_of(action: str, outcome: str, latency_ms: float | None) -> int:
    """The histogram bucket of an event: the first bound its latency is within, len(bounds)
    when over them all or unknown (counted in +Inf only), NO_BUCKET when it is no successful
    deprovisioning."""
    if action != DEPROVISION or outcome != "success":
        return NO_BUCKET
    if latency_ms is not None:
        for index, bound in enumerate(LATENCY_BOUNDS_MS):
            if latency_ms <= bound:
                return index
    return len(LATENCY_BOUNDS_MS)


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def add(session: Session, events: Iterable[Mapping[str, Any] | Event]) -> None:
    """Count events (the rows of a multi-row insert, or Event objects) in the session's
    transaction; written when it commits."""
    tally: dict[Key, list[float]] = session.info.setdefault(_TALLY, {})
    for row in events:
        fields: Mapping[str, Any] = row.__dict__ if isinstance(row, Event) else row
        time: datetime | None = fields.get("time")
        app_id: str | None = fields.get("app_id")
        action: str = fields["action"]
        outcome: str = fields.get("outcome") or "success"
        details: Mapping[str, Any] | None = fields.get("details")
        latency = _latency(details)
        key = (
            day_of(time or utcnow()), app_id or NO_APP, action, outcome,
            bucket_of(action, outcome, latency),
        )
        for counted in (tally.setdefault(key, [0, 0.0]),
                        tally.setdefault((ALL_TIME, *key[1:]), [0, 0.0])):
            counted[0] += 1
            if key[4] != NO_BUCKET and latency is not None:
                counted[1] += latency


def _latency(details: Mapping[str, Any] | None) -> float | None:
    value = (details or {}).get("latency_ms")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@event.listens_for(Session, "before_flush")
def _tally_new_events(session: Session, _context: Any, _instances: Any) -> None:
    new = [row for row in session.new if isinstance(row, Event)]
    for row in new:
        if row.time is None:  # the column's default, taken now so that the count has its day
            row.time = utcnow()
    if new:
        add(session, new)


@event.listens_for(Session, "before_commit")
def _write_tally(session: Session) -> None:
    session.flush()  # the commit's own flush comes after this hook: tally what it would add
    tally: dict[Key, list[float]] | None = session.info.pop(_TALLY, None)
    if not tally:
        return
    rows = [
        {"day": key[0], "app_id": key[1], "action": key[2], "outcome": key[3], "bucket": key[4],
         "count": int(counted[0]), "latency_ms": counted[1]}
        for key, counted in sorted(tally.items())
    ]
    session.connection().execute(_upsert(session.get_bind().dialect.name), rows)


# A savepoint's copy of the tally as it began, for as long as the savepoint object lives.
_SAVED: weakref.WeakKeyDictionary[SessionTransaction, dict[Key, list[float]]] = (
    weakref.WeakKeyDictionary()
)


@event.listens_for(Session, "after_transaction_create")
def _save_tally(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        tally = session.info.get(_TALLY, {})
        _SAVED[transaction] = {key: list(counted) for key, counted in tally.items()}


@event.listens_for(Session, "after_soft_rollback")
def _roll_back_tally(session: Session, previous: SessionTransaction) -> None:
    if previous.nested:
        saved = _SAVED.pop(previous, None)
        if saved is not None:
            session.info[_TALLY] = saved
    elif previous.parent is None:  # the transaction is over: its events are not written
        session.info.pop(_TALLY, None)


@lru_cache(maxsize=4)
def _upsert(dialect: str) -> Any:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_(EventRollup)
    return statement.on_conflict_do_update(
        index_elements=["day", "app_id", "action", "outcome", "bucket"],
        set_={
            "count": EventRollup.count + statement.excluded.count,
            "latency_ms": EventRollup.latency_ms + statement.excluded.latency_ms,
        },
    )


def actions(session: Session, prefix: str) -> list[str]:
    """The actions ever written that are ``prefix`` or start with ``prefix + '.'``: a filter
    by them is an equality (or a short IN list), which an index in the log's order serves
    page by page, where ``action LIKE 'prefix.%'`` would read every match to sort them."""
    return list(
        session.scalars(
            select(EventRollup.action)
            .where(
                EventRollup.day == ALL_TIME,
                or_(
                    EventRollup.action == prefix,
                    EventRollup.action.startswith(prefix + ".", autoescape=True),
                ),
            )
            .distinct()
            .order_by(EventRollup.action)
        )
    )
