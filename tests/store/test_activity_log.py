"""The activity log at scale (store.rollups, store.partitions, engine.retention, migration 0026).

/metrics' figures drawn from rollups are the figures a scan of the log gives, whichever way the
events were written (one by one, a multi-row insert, a rolled-back transaction); retention
deletes what is past it and nothing else, in chunks on SQLite, a month whole on PostgreSQL;
exactly one process holds the periodic job; the migration keeps every event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, insert, select, text

from provisiond.config import Settings
from provisiond.engine import retention
from provisiond.runtime import Runtime
from provisiond.services import monitoring
from provisiond.services.activity import record
from provisiond.services.context import SYSTEM
from provisiond.store import partitions, rollups
from provisiond.store.db import Database
from provisiond.store.events import add_event
from provisiond.store.tables import Event, EventRollup, utcnow
from tests.support.migrations import migrate as _migrate

NOW = utcnow()


def _row(action: str, outcome: str = "success", *, app: str | None = "a1",
         latency: Any = None, time: datetime | None = None) -> dict[str, Any]:
    details = {} if latency is None else {"latency_ms": latency}
    return {"time": time or NOW, "actor": "engine", "action": action, "outcome": outcome,
            "app_id": app, "user_id": "u1", "targets": {}, "message": action,
            "details": details, "correlation_id": "c1"}


ROWS = [
    _row("app.user.provision"), _row("app.user.provision", app="a2"),
    _row("app.user.provision", "retry"), _row("app.user.update", "failure", app=None),
    _row("app.user.deprovision", latency=20), _row("app.user.deprovision", latency=50),
    _row("app.user.deprovision", latency=51), _row("app.user.deprovision", latency=3_600_000),
    _row("app.user.deprovision"), _row("app.user.deprovision", "failure", latency=10),
    _row("app.user.deprovision", latency=400, app="a2", time=NOW - timedelta(days=3)),
    _row("app.run.finish"),
]


def _scan(session: Any) -> tuple[Any, ...]:
    """What /metrics showed before rollups: grouped counts over the events themselves."""
    operations = Counter[tuple[str | None, str, str]]()
    retried = Counter[str | None]()
    latencies: dict[str | None, list[float | None]] = defaultdict(list)
    for app_id, action, outcome, details in session.execute(
        select(Event.app_id, Event.action, Event.outcome, Event.details)
    ):
        if action.startswith("app.user."):
            operations[(app_id, action.removeprefix("app.user."), outcome)] += 1
        if outcome == "retry":
            retried[app_id] += 1
        if action == rollups.DEPROVISION and outcome == "success":
            latencies[app_id].append(details.get("latency_ms"))
    histograms = {}
    for app_id, values in latencies.items():
        known = [v for v in values if v is not None]
        buckets = [(bound, sum(1 for v in known if v <= bound * 1000))
                   for bound in rollups.LATENCY_BUCKETS_SECONDS]
        buckets.append((float("inf"), len(values)))
        histograms[app_id] = monitoring.Histogram(buckets, len(values), sum(known) / 1000)
    return dict(operations), dict(retried), histograms


def _figures(session: Any) -> tuple[Any, ...]:
    operations = {(a, op, o): n for a, op, o, n in monitoring.operations(session)}
    return operations, monitoring.retries(session), monitoring.deprovision_latency(session)


def test_metrics_from_rollups_are_the_scan(runtime: Runtime) -> None:
    with runtime.db.session() as session:  # a multi-row insert, as engine.writer writes
        session.connection().execute(insert(Event), ROWS)
        rollups.add(session, ROWS)
    with runtime.db.session() as session:  # one by one, through the ORM
        record(session, SYSTEM, "app.user.provision", "by hand", app_id="a1")
        session.add(Event(actor="x", action="app.user.deprovision", outcome="success",
                          app_id="a3", targets={}, message="m", details={"latency_ms": 7},
                          correlation_id="c"))
        add_event(session, actor="x", correlation_id="c", action="user.create", message="m")
        savepoint = session.begin_nested()  # as services.impact tries a change
        add_event(session, actor="x", correlation_id="c", action="app.user.update",
                  message="tried, not kept", app_id="a1")
        session.flush()
        savepoint.rollback()
        with session.begin_nested():
            add_event(session, actor="x", correlation_id="c", action="app.user.update",
                      message="kept", app_id="a2")

    def rolled_back() -> None:
        with runtime.db.session() as session:
            add_event(session, actor="x", correlation_id="c", action="app.user.provision",
                      message="never committed", app_id="a1")
            session.flush()
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        rolled_back()
    with runtime.db.session() as session:
        assert _figures(session) == _scan(session)
        assert monitoring.deprovision_latency(session)["a1"].buckets[0] == (0.05, 2)
        days = set(session.scalars(select(EventRollup.day)))
        # /logs' action prefix, as the exact actions the log holds ('_' is no wildcard)
        assert rollups.actions(session, "app.user") == [
            "app.user.deprovision", "app.user.provision", "app.user.update"]
        assert rollups.actions(session, "app.run.finish") == ["app.run.finish"]
        assert rollups.actions(session, "app_user") == []
    assert days == {rollups.ALL_TIME, NOW.date(), (NOW - timedelta(days=3)).date()}


@given(st.floats(min_value=0, max_value=2e6, allow_nan=False) | st.none())
def test_a_latency_counts_in_every_bucket_at_or_over_it(latency: float | None) -> None:
    bucket = rollups.bucket_of(rollups.DEPROVISION, "success", latency)
    for index, bound in enumerate(rollups.LATENCY_BOUNDS_MS):
        assert (bucket <= index) == (latency is not None and latency <= bound)
    assert rollups.bucket_of(rollups.DEPROVISION, "failure", latency) == rollups.NO_BUCKET


def _events(rt: Runtime, days_ago: list[float]) -> None:
    rows = [_row("app.user.provision", time=NOW - timedelta(days=d)) for d in days_ago]
    with rt.db.session() as session:
        session.connection().execute(insert(Event), rows)
        rollups.add(session, rows)


def _ages(rt: Runtime) -> list[int]:
    with rt.db.session() as session:
        times = session.scalars(select(Event.time).order_by(Event.time)).all()
    return [round((NOW - t).total_seconds() / 86400) for t in times]


def test_retention_deletes_what_is_past_it_in_chunks(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "CHUNK", 2)
    _events(runtime, [400, 401, 402, 500, 9000, 2, 0])
    settings = runtime.settings.model_copy(update={"event_retention_days": 365})
    result = retention.run(runtime.db, settings, now=NOW)
    assert result["deleted"] == 5 and result["dropped"] == []
    assert _ages(runtime) == [2, 0]
    forever = runtime.settings.model_copy(update={"event_retention_days": 0})
    assert retention.run(runtime.db, forever, now=NOW + timedelta(days=9999))["deleted"] == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has none
def test_postgresql_months_are_made_ahead_and_dropped_whole(runtime: Runtime) -> None:
    month = partitions.month_start(NOW)
    earlier = month - timedelta(days=1)  # the last day of the previous month
    _events(runtime, [0, (NOW - earlier).total_seconds() / 86400])
    with runtime.db.session() as session:
        moved = partitions.create_month(session.connection(), partitions.month_start(earlier))
    assert moved == 1  # out of the default partition into its month
    later = partitions.next_month(partitions.next_month(month)) + timedelta(days=400)
    settings = runtime.settings.model_copy(update={"event_retention_days": 365})
    result = retention.run(runtime.db, settings, now=later)
    assert partitions.name_of(month) in result["dropped"]
    assert partitions.name_of(partitions.month_start(earlier)) in result["dropped"]
    assert partitions.name_of(partitions.month_start(later)) in result["created"]
    assert result["deleted"] == 0 and _ages(runtime) == []
    with runtime.db.session() as session:  # the counts outlive the events
        assert monitoring.operations(session) == [("a1", "provision", "success", 2)]
        names = partitions.months(session.connection())
        session.connection().execute(insert(Event), [_row("app.user.provision", time=later)])
        in_month = session.execute(text(
            f"SELECT count(*) FROM {partitions.name_of(partitions.month_start(later))}"  # noqa: S608
        )).scalar()
    assert in_month == 1 and min(names.values()) > month


def test_one_process_holds_the_job(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        assert retention.claim(session, "w1", NOW)
        assert not retention.claim(session, "w2", NOW)  # w1's lease is live
        assert not retention.claim(session, "w2", NOW + retention.LEASE / 2)
    with runtime.db.session() as session:  # w1 died holding it: the lease ends
        assert retention.claim(session, "w2", NOW + retention.LEASE * 2)
        retention.release(session, "w2", NOW + retention.EVERY * 3, {"deleted": 0})
    with runtime.db.session() as session:  # done: not due before its next time, once then
        assert not retention.claim(session, "w1", NOW + retention.EVERY * 2)
        assert retention.claim(session, "w1", NOW + retention.EVERY * 30)
    other = Settings(**{**runtime.settings.model_dump(), "event_retention_days": 1})
    assert retention.run_if_due(runtime.db, other, "w3") is None  # w1 holds it


def test_migration_keeps_every_event_and_counts_them(database_url: str) -> None:
    _migrate(database_url, "0018")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(insert(Event), [*ROWS, _row("app.user.provision",
                                                       time=NOW - timedelta(days=800))])
        before = connection.execute(select(Event.id, Event.time).order_by(Event.id)).all()
    engine.dispose()
    _migrate(database_url, "head")
    db = Database(database_url)
    try:
        with db.session() as session:
            assert session.execute(select(Event.id, Event.time).order_by(Event.id)).all() == before
            assert _figures(session) == _scan(session)
            fresh = add_event(session, actor="x", correlation_id="c", action="a", message="m")
            session.flush()
            assert fresh.id > before[-1][0]
            assert session.get(Event, before[0][0]) is not None
            if db.is_postgres:
                names = partitions.months(session.connection())
                assert partitions.name_of(partitions.month_start(NOW - timedelta(days=800))) in names
    finally:
        db.dispose()
    _migrate(database_url, "0018", down=True)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(Event)).scalar()
    engine.dispose()
    assert count == len(before) + 1
