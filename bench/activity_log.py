"""The activity log at scale (issue 13 item 7): /logs' filtered queries, the dashboard and
/metrics over millions of events on PostgreSQL, before (main's schema, revision 0018) and
after (revision 0026: indexes in the log's order, monthly partitions, rollups).

    .venv/bin/python bench/activity_log.py [--events 10000000] [--days 180] [--repeat 3]

Setup: a fresh database at revision 0018, 30 apps, N events over the last D days generated in
the database (``INSERT ... SELECT generate_series``; main's indexes built after the load), a
mix like a 10,000-person organisation's (provisionings, updates, deprovisionings with their
latency, retries, failures, admin changes without an app). Timed, each the median of
``--repeat`` warm runs: ``services.activity.search`` as /logs calls it (first page of 100 and a
deep page, whose cursor is half-way back in the log), ``services.monitoring.dashboard``, and
/metrics' event figures (before: main's grouped scans of the log, copied here; after: the
rollups). Then the migration to 0026 (timed: it converts the table, keeping every event) and
the same queries again. Output: a table of milliseconds, before / after / ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from alembic import command
from sqlalchemy import case, func, select, text

from provisiond.services import activity, monitoring
from provisiond.store.db import Database
from provisiond.store.migrate import alembic_config
from provisiond.store.rollups import DEPROVISION, LATENCY_BUCKETS_SECONDS
from provisiond.store.tables import Event, utcnow

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
APPS = 30
USERS = 10_000
MAIN_INDEXES = {
    "ix_events_action": "action", "ix_events_app_time": "app_id, id",
    "ix_events_correlation_id": "correlation_id", "ix_events_time": "time",
    "ix_events_user_id": "user_id",
}
# One event in 20: 6 provisionings, 8 updates, 2 deprovisionings, 1 group sync, 1 run end,
# 2 admin changes of no app. One attempt in 100 fails, 4 are retried, 2 skipped.
GENERATE = """
INSERT INTO events (time, actor, action, outcome, app_id, user_id, targets, message, details,
                    correlation_id)
SELECT now() - make_interval(secs => :span * (1 - g::float / :n)),
       CASE WHEN g % 20 >= 18 THEN 'admin' ELSE 'engine' END,
       CASE WHEN g % 20 < 6 THEN 'app.user.provision'
            WHEN g % 20 < 14 THEN 'app.user.update'
            WHEN g % 20 < 16 THEN 'app.user.deprovision'
            WHEN g % 20 = 16 THEN 'app.group.sync'
            WHEN g % 20 = 17 THEN 'app.run.finish'
            ELSE 'user.update' END,
       CASE WHEN g % 20 >= 18 THEN 'success'
            WHEN (g * 37) % 100 = 0 THEN 'failure'
            WHEN (g * 37) % 100 < 5 THEN 'retry'
            WHEN (g * 37) % 100 < 7 THEN 'skipped'
            ELSE 'success' END,
       CASE WHEN g % 20 >= 18 THEN NULL ELSE 'app-' || lpad(((g / 20) % :apps)::text, 2, '0') END,
       CASE WHEN g % 20 = 17 THEN NULL ELSE 'user-' || ((g * 7919) % :users) END,
       '{}'::jsonb,
       'an event of the generated log, number ' || g,
       CASE WHEN g % 20 IN (14, 15) THEN jsonb_build_object('latency_ms', (g * 13) % 4000)
            ELSE '{}'::jsonb END,
       md5(g::text)
FROM generate_series(1, :n) AS g
"""


def _migrate(url: str, revision: str) -> None:
    db = Database(url)
    config = alembic_config(url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    db.dispose()


def _setup(url: str, events: int, days: int) -> None:
    _migrate(url, "0018")
    db = Database(url)
    with db.engine.begin() as connection:
        for number in range(APPS):
            connection.execute(text(
                "INSERT INTO apps (id, name, label, connector_type, connector, provisioning, "
                "created_at, updated_at) VALUES (:id, :id, :id, 'scim2', '{}', "
                "'{\"enabled\": true}', now(), now())"), {"id": f"app-{number:02d}"})
        for name in MAIN_INDEXES:
            connection.execute(text(f"DROP INDEX {name}"))
        started = time.monotonic()
        connection.execute(text(GENERATE), {"n": events, "span": days * 86400,
                                             "apps": APPS, "users": USERS})
        print(f"generated {events:,} events in {time.monotonic() - started:.0f} s", flush=True)
        started = time.monotonic()
        for name, columns in MAIN_INDEXES.items():
            connection.execute(text(f"CREATE INDEX {name} ON events ({columns})"))
        print(f"main's indexes built in {time.monotonic() - started:.0f} s", flush=True)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE events"))
    db.dispose()


def scan_metrics(session: Any) -> None:
    """main's /metrics figures of the log: three grouped scans of the events (copied from
    services/monitoring.py at main)."""
    session.execute(
        select(Event.app_id, Event.action, Event.outcome, func.count())
        .where(Event.action.startswith("app.user."))
        .group_by(Event.app_id, Event.action, Event.outcome)
    ).all()
    session.execute(
        select(Event.app_id, func.count()).where(Event.outcome == "retry").group_by(Event.app_id)
    ).all()
    latency = Event.details["latency_ms"].as_float()
    bounds = [round(bound * 1000) for bound in LATENCY_BUCKETS_SECONDS]
    columns = [func.sum(case((latency <= bound, 1), else_=0)) for bound in bounds]
    session.execute(
        select(Event.app_id, func.count(), func.sum(latency), *columns)
        .where(Event.action == DEPROVISION, Event.outcome == "success")
        .group_by(Event.app_id)
    ).all()


def rollup_metrics(session: Any) -> None:
    monitoring.operations(session)
    monitoring.retries(session)
    monitoring.deprovision_latency(session)


def queries(db: Database) -> dict[str, Callable[[Any], Any]]:
    """The /logs queries, by name: each a function of a session."""
    with db.session() as session:
        top = session.scalar(select(func.max(Event.id))) or 0
    middle = activity.encode_cursor(top // 2)
    now = utcnow()
    day = (now - timedelta(days=60), now - timedelta(days=59))
    week = (now - timedelta(days=30), now - timedelta(days=23))
    app, user = "app-07", "user-4242"

    def search(**filters: Any) -> Callable[[Any], Any]:
        return lambda session: activity.search(session, activity.LogQuery(limit=100, **filters))

    return {
        "no filter, first page": search(),
        "no filter, deep page": search(cursor=middle),
        "app, first page": search(app_id=app),
        "app, deep page": search(app_id=app, cursor=middle),
        "user, first page": search(user_id=user),
        "user, deep page": search(user_id=user, cursor=middle),
        "action (exact), first page": search(action=DEPROVISION),
        "action (prefix app.user), first page": search(action="app.user"),
        "action, deep page": search(action=DEPROVISION, cursor=middle),
        "time range (a day, 60 days ago)": search(since=day[0], until=day[1]),
        "app + action": search(app_id=app, action=DEPROVISION),
        "app + action, deep page": search(app_id=app, action=DEPROVISION, cursor=middle),
        "app + time range (a week)": search(app_id=app, since=week[0], until=week[1]),
        "user + app": search(user_id=user, app_id=app),
        "action + time range (a day)": search(action="user.update", since=day[0], until=day[1]),
        "app + outcome failure": search(app_id=app, outcome="failure"),
        "app_admin scope (3 apps), first page": search(
            app_ids=frozenset({"app-01", "app-02", "app-03"})),
        "app + action + time range, deep page": search(
            app_id=app, action="app.user.update", since=week[0], until=week[1], cursor=middle),
    }


def timed(db: Database, function: Callable[[Any], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat + 1):  # the first run warms the cache and is not counted
        with db.session() as session:
            started = time.perf_counter()
            function(session)
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[1:])


def measure(url: str, repeat: int, metrics: Callable[[Any], Any]) -> dict[str, float]:
    db = Database(url)
    try:
        figures = {name: timed(db, query, repeat) for name, query in queries(db).items()}
        figures["dashboard (30 apps)"] = timed(db, monitoring.dashboard, repeat)
        figures["/metrics, figures of the log"] = timed(db, metrics, repeat)
    finally:
        db.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()
    name = f"bench_activity_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        _setup(url, options.events, options.days)
        before = measure(url, options.repeat, scan_metrics)
        started = time.monotonic()
        _migrate(url, "head")
        print(f"migration to 0026 (partitions, copy, indexes, rollups) in "
              f"{time.monotonic() - started:.0f} s", flush=True)
        after = measure(url, options.repeat, rollup_metrics)
    finally:
        if not options.keep:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\n{options.events:,} events over {options.days} days, PostgreSQL; "
          f"median of {options.repeat} warm runs, ms\n")
    print("| query | before (0018) | after (0026) | before / after |")
    print("| --- | ---: | ---: | ---: |")
    for key in before:
        ratio = before[key] / after[key] if after[key] else float("inf")
        print(f"| {key} | {before[key]:.1f} | {after[key]:.1f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
