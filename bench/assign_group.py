"""Group assignment at scale: how long the API call takes to return for a group of N users.

    .venv/bin/python bench/assign_group.py [--users 10000] [--repeat 3]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Set-up (not timed): N active users in one group, --repeat apps with provisioning enabled
(pointing at one stock scim2-server), a real provisiond server (REST API + worker thread) in
its own process on the same database.

Timed: ``POST /api/v1/apps/{id}/assignments {"principal_type": "group", ...}`` over HTTP,
once per app, until the response arrives: the assignment and its N queued reconciles commit
in that one transaction (the worker provisions them afterwards, not timed). Baseline, same
run, same server: ``GET /api/v1/apps/{id}``, the cheapest authenticated call, to show the
HTTP floor. Checked afterwards: each app has exactly N tasks.

Target (issue 9): the call returns in at most 1 s for N = 10,000.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    banner,
    bench_database,
    create_directory,
    create_enabled_app,
    load_average,
    make_runtime,
    provisiond_server,
    scim_target,
    summary,
    workdir,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="apps assigned, one call each")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    banner("group assignment", users=args.users, repeat=args.repeat,
           database=args.database_url or "sqlite (temp dir)")
    from sqlalchemy import func, select

    from provisiond.services import tokens
    from provisiond.services.context import SYSTEM
    from provisiond.store.tables import Task

    ok = True
    with workdir() as wd, bench_database(args.database_url, wd) as url, scim_target() as base:
        runtime = make_runtime(url, wd)
        started = time.perf_counter()
        group_id, _ = create_directory(runtime, args.users, "bench-assign")
        app_ids = [
            create_enabled_app(runtime, f"bench-assign-{i}", base, concurrency=8)
            for i in range(args.repeat)
        ]
        with runtime.db.session() as session:
            token = tokens.create_token(session, SYSTEM, "bench")
        print(f"# set-up: {args.users} users, {args.repeat} apps in "
              f"{time.perf_counter() - started:.1f} s (not timed)")
        runtime.stop()
        with provisiond_server(url, wd) as (server, _process):
            client = httpx.Client(
                base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {token}"},
                timeout=120,
            )
            floor: list[float] = []
            for app_id in app_ids:
                t = time.perf_counter()
                client.get(f"/apps/{app_id}").raise_for_status()
                floor.append(time.perf_counter() - t)
            calls: list[float] = []
            for app_id in app_ids:
                t = time.perf_counter()
                response = client.post(
                    f"/apps/{app_id}/assignments",
                    json={"principal_type": "group", "principal_id": group_id},
                )
                calls.append(time.perf_counter() - t)
                if response.status_code != 201:
                    print(f"FAIL: {response.status_code} {response.text[:300]}")
                    ok = False
        with runtime.db.session() as session:
            queued = {
                app_id: session.scalar(
                    select(func.count()).select_from(Task).where(Task.app_id == app_id)
                )
                for app_id in app_ids
            }
        runtime.db.dispose()
    calls_s, floor_s = summary(calls), summary(floor)
    print()
    print(f"{'':34} {'p50 ms':>9} {'max ms':>9}")
    print(f"{'POST assignment (group of ' + str(args.users) + ')':34} "
          f"{calls_s['p50'] * 1000:9.0f} {calls_s['max'] * 1000:9.0f}")
    print(f"{'GET app (HTTP floor)':34} {floor_s['p50'] * 1000:9.0f} {floor_s['max'] * 1000:9.0f}")
    print(f"ratio slowest call / 1 s target: {calls_s['max']:.2f}   (issue 9: <= 1.0)")
    print(f"# tasks per app {sorted(queued.values())}; load average now {load_average()}")
    if any(count != args.users for count in queued.values()):
        print(f"FAIL: expected {args.users} tasks per app, got {queued}")
        ok = False
    print("correctness: OK" if ok else "correctness: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
