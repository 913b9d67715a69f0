"""The activity log at scale (issue 13 item 7): /logs' filtered queries, the dashboard and
/metrics over millions of events on PostgreSQL, before (main's schema, revision 0018) and
after (revision 0026: indexes in the log's order, monthly partitions, rollups).

    .venv/bin/python bench/activity_log.py [--events 10000000] [--days 180] [--repeat 3]

Setup: a fresh database at revision 0018, 30 apps, N events over the last D days generated in
the database (``INSERT ... SELECT generate_series``; main's indexes built after the load), a
mix like a 10,000-person organisation's (provisionings, updates, deprovisionings with their
latency, retries, failures, admin changes without an app). Timed, each the best of
``--repeat`` warm runs (the machine is shared; the best run is the least disturbed): ``services.activity.search`` as /logs calls it (first page of 100 and a
deep page, whose cursor is half-way back in the log), ``services.monitoring.dashboard``, and
/metrics' figures of the log (operations, retries, the latency histogram). Before: main's
services/activity.py and services/monitoring.py (``git show main:...``) on main's schema;
after: this checkout's, on 0026. Then the migration to 0026 (timed: it converts the table, keeping every event) and
the same queries again. Output: a table of milliseconds, before / after / ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from sqlalchemy import func, select, text

from provisiond.services import activity, monitoring
from provisiond.store.db import Database
from provisiond.store.migrate import alembic_config
from provisiond.store.rollups import DEPROVISION
from provisiond.store.tables import Event, utcnow

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parent.parent
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
            WHEN abs(hashtext('o' || g)) % 100 = 0 THEN 'failure'
            WHEN abs(hashtext('o' || g)) % 100 < 5 THEN 'retry'
            WHEN abs(hashtext('o' || g)) % 100 < 7 THEN 'skipped'
            ELSE 'success' END,
       CASE WHEN g % 20 >= 18 THEN NULL ELSE 'app-' || lpad(((g / 20) % :apps)::text, 2, '0') END,
       CASE WHEN g % 20 = 17 THEN NULL ELSE 'user-' || abs(hashtext('u' || g)) % :users END,
       '{}'::jsonb,
       'an event of the generated log, number ' || g,
       CASE WHEN g % 20 IN (14, 15) THEN jsonb_build_object('latency_ms', abs(hashtext('l' || g)) % 4000)
            ELSE '{}'::jsonb END,
       md5(g::text)
FROM generate_series(1::bigint, :n) AS g
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


def module_at(ref: str, path: str) -> types.ModuleType:
    """A module of the code at ``ref`` (main's services, to run before the migration)."""
    source = subprocess.run(
        ["git", "show", f"{ref}:{path}"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    name = f"bench_{ref}_{Path(path).stem}"
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own code
    return module


def metrics_of(monitor: Any) -> Callable[[Any], Any]:
    """/metrics' figures of the log (the rest, tasks and accounts, is the same code)."""

    def figures(session: Any) -> None:
        monitor.operations(session)
        monitor.retries(session)
        monitor.deprovision_latency(session)

    return figures


def queries(db: Database, activity: Any) -> dict[str, Callable[[Any], Any]]:
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
    return min(samples[1:])  # the machine is shared: the least disturbed run


def measure(url: str, repeat: int, activity: Any, monitor: Any) -> dict[str, float]:
    db = Database(url)
    try:
        figures = {name: timed(db, query, repeat) for name, query in queries(db, activity).items()}
        figures["dashboard (30 apps)"] = timed(db, monitor.dashboard, repeat)
        figures["/metrics, figures of the log"] = timed(db, metrics_of(monitor), repeat)
    finally:
        db.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--before", default="main", help="the code measured on 0018")
    options = parser.parse_args()
    name = f"bench_activity_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        _setup(url, options.events, options.days)
        before = measure(
            url, options.repeat,
            module_at(options.before, "src/provisiond/services/activity.py"),
            module_at(options.before, "src/provisiond/services/monitoring.py"),
        )
        started = time.monotonic()
        _migrate(url, "head")
        print(f"migration to 0026 (partitions, copy, indexes, rollups) in "
              f"{time.monotonic() - started:.0f} s", flush=True)
        after = measure(url, options.repeat, activity, monitoring)
    finally:
        if not options.keep:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\n{options.events:,} events over {options.days} days, PostgreSQL; "
          f"best of {options.repeat} warm runs, ms\n")
    print("| query | before (0018) | after (0026) | before / after |")
    print("| --- | ---: | ---: | ---: |")
    for key in before:
        ratio = before[key] / after[key] if after[key] else float("inf")
        print(f"| {key} | {before[key]:.1f} | {after[key]:.1f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
