"""Provisioning throughput: N users into a fresh scim2-server, against a bare httpx client.

    .venv/bin/python bench/provision_throughput.py [--users 2000] [--concurrency 8]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--profile] [--threads]

Set-up (not timed): N active users, one group holding them all, an app with provisioning
enabled at concurrency C, all through the service layer on a fresh database.

Timed, provisiond: from assigning the group to the app (one transaction that enqueues N tasks)
until ``Worker.drain()`` finds nothing left to do, the worker running in this process. Twice,
each on a fresh database and target: once with one stranger's account already in the target
(the app is not empty, so every create looks its account up first: lookup + POST), once with
an empty target (the worker sees it empty and its creates skip the lookup: POST only).

Timed, baselines (each against its own fresh target process, same payloads as
``provisiond.engine.desired.default_mapping`` builds, same concurrency C, one pooled
``httpx.AsyncClient``):
  * bare POST:          one ``POST /Users`` per user;
  * bare lookup + POST: ``GET /Users?filter=userName eq ...`` then ``POST /Users``, the same
    two round trips the executor makes for a create (it looks for an existing account first).

``--threads`` prints each provisiond run's CPU per user by thread (the worker's event loop is
MainThread, its database thread provisiond-db_0), read from /proc every 20 ms.

Every target is checked to hold exactly N users afterwards (plus the stranger). The figures
issue 9 asks for are printed as ratios at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    TARGET_PIDS,
    TARGET_TOKEN,
    BenchUser,
    ThreadCPU,
    assign_group,
    banner,
    bench_database,
    count_users,
    cpu_seconds,
    create_directory,
    create_enabled_app,
    load_average,
    make_runtime,
    scim_target,
    task_counts,
    workdir,
)

SCIM_JSON = "application/scim+json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000, help="N, users to provision")
    parser.add_argument("--concurrency", type=int, default=8, help="C, the app's concurrency")
    parser.add_argument(
        "--capacity", type=int, default=64, help="the worker's capacity (its default: 64)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to create a fresh bench_<random> database on",
    )
    parser.add_argument("--timeout", type=float, default=240.0, help="bound on each timed phase, s")
    parser.add_argument("--profile", action="store_true", help="cProfile the provisiond phase")
    parser.add_argument(
        "--threads",
        action="store_true",
        help="print the provisiond phase's CPU per thread (event loop, database thread)",
    )
    return parser.parse_args(argv)


# -- provisiond --------------------------------------------------------------------------------------


def run_provisiond(
    runtime: Any, base: str, group_id: str, args: argparse.Namespace
) -> dict[str, float]:
    from sqlalchemy import func, select

    from provisiond.engine.worker import Worker
    from provisiond.store.tables import Account, Task

    app_id = create_enabled_app(runtime, "bench-throughput", base, concurrency=args.concurrency)
    worker = Worker(runtime.db, runtime.settings, runtime.vault, capacity=args.capacity)
    profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not wall

    target_pid = TARGET_PIDS[base]
    threads = ThreadCPU()
    with threads if args.threads else contextlib.nullcontext():
        cpu_self, cpu_target = cpu_seconds(), cpu_seconds(target_pid)
        started_utc = datetime.now(UTC)
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        assign_group(runtime, app_id, group_id)
        enqueued = time.perf_counter()
        asyncio.run(worker.drain(timeout=args.timeout))
        finished = time.perf_counter()
        if profiler:
            profiler.disable()
        cpu_self, cpu_target = cpu_seconds() - cpu_self, cpu_seconds(target_pid) - cpu_target
    for name, seconds in sorted(threads.seconds().items(), key=lambda item: -item[1]):
        if seconds > 0:
            print(f"# thread {name:18} {seconds * 1000 / args.users:6.2f} ms CPU per user")

    with runtime.db.session() as session:
        last_task = session.scalar(select(func.max(Task.updated_at)).where(Task.app_id == app_id))
        accounts = session.scalar(
            select(func.count()).select_from(Account).where(Account.app_id == app_id)
        )
    last = (last_task - started_utc).total_seconds() if last_task else float("nan")
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        print(out.getvalue())
    return {
        "elapsed": finished - started,
        "enqueue": enqueued - started,
        "last_task_done": last,
        "accounts": float(accounts or 0),
        "cpu_self": cpu_self,
        "cpu_target": cpu_target,
    }


# -- the bare baseline -------------------------------------------------------------------------------


async def bare_client(
    base: str, users: list[BenchUser], concurrency: int, *, lookup: bool
) -> float:
    payloads = [(user.login, json.dumps(user.scim_payload()).encode()) for user in users]
    pending = iter(payloads)
    headers = {"Authorization": f"Bearer {TARGET_TOKEN}", "Accept": SCIM_JSON}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base + "/", headers=headers, limits=limits, timeout=30
    ) as client:

        async def one_lane() -> None:
            for login, body in pending:  # a shared iterator: each payload is sent once
                if lookup:
                    found = await client.get(
                        "Users",
                        params={"filter": f'userName eq "{login}"', "startIndex": 1, "count": 2},
                    )
                    found.raise_for_status()
                    if found.json().get("Resources"):
                        raise RuntimeError(f"{login} exists already in a fresh target")
                response = await client.post(
                    "Users", content=body, headers={"Content-Type": SCIM_JSON}
                )
                if response.status_code != 201:
                    raise RuntimeError(
                        f"POST /Users answered {response.status_code}: {response.text[:200]}"
                    )

        started = time.perf_counter()
        await asyncio.gather(*(one_lane() for _ in range(concurrency)))
        return time.perf_counter() - started


def run_bare(users: list[BenchUser], args: argparse.Namespace, *, lookup: bool) -> dict[str, float]:
    with scim_target() as base:
        cpu_self, cpu_target = cpu_seconds(), cpu_seconds(TARGET_PIDS[base])
        elapsed = asyncio.run(
            asyncio.wait_for(
                bare_client(base, users, args.concurrency, lookup=lookup), args.timeout
            )
        )
        return {
            "elapsed": elapsed,
            "count": count_users(base),
            "cpu_self": cpu_seconds() - cpu_self,
            "cpu_target": cpu_seconds(TARGET_PIDS[base]) - cpu_target,
        }


# -- main --------------------------------------------------------------------------------------------


def seed_other_account(base: str) -> None:
    """One account that belongs to nobody in the directory: the app is not empty, so every
    create looks its account up first (the executor's ordinary path)."""
    response = httpx.post(
        base + "/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "stranger"},
        headers={"Authorization": f"Bearer {TARGET_TOKEN}", "Content-Type": SCIM_JSON},
    )
    response.raise_for_status()


def run_mode(args: argparse.Namespace, *, known_empty: bool) -> tuple[dict[str, float], int, dict[str, int], list[BenchUser]]:
    """provisiond against a fresh target: one holding a stranger (lookups), or empty."""
    n = args.users
    with workdir() as wd, bench_database(args.database_url, wd) as url:
        runtime = make_runtime(url, wd)
        try:
            t = time.perf_counter()
            group_id, users = create_directory(runtime, n, "bench-throughput")
            print(f"# set-up: {n} users + group in {time.perf_counter() - t:.1f} s (not timed)")
            with scim_target() as base:
                if not known_empty:
                    seed_other_account(base)
                pvd = run_provisiond(runtime, base, group_id, args)
                in_target = count_users(base) - (0 if known_empty else 1)
            tasks = task_counts(runtime)
        finally:
            runtime.stop()
            runtime.db.dispose()
    return pvd, in_target, tasks, users


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n, c = args.users, args.concurrency
    banner(
        "provision throughput",
        users=n,
        concurrency=c,
        worker_capacity=args.capacity,
        database=args.database_url or "sqlite (temp dir)",
    )
    ok = True
    pvd, in_target, tasks, users = run_mode(args, known_empty=False)
    empty, empty_in_target, empty_tasks, _ = run_mode(args, known_empty=True)
    bare = run_bare(users, args, lookup=False)
    lookup = run_bare(users, args, lookup=True)

    rows = [
        ("provisiond, lookup + POST", pvd["elapsed"], in_target, pvd["cpu_self"], pvd["cpu_target"]),
        (
            "provisiond, app known empty",
            empty["elapsed"],
            empty_in_target,
            empty["cpu_self"],
            empty["cpu_target"],
        ),
        ("bare POST", bare["elapsed"], int(bare["count"]), bare["cpu_self"], bare["cpu_target"]),
        (
            "bare lookup + POST",
            lookup["elapsed"],
            int(lookup["count"]),
            lookup["cpu_self"],
            lookup["cpu_target"],
        ),
    ]
    print()
    print(
        f"{'':28} {'seconds':>8} {'users/s':>8} {'in target':>10} {'client CPU':>11} {'target CPU':>11}"
        f" {'client ms/user':>15} {'target ms/user':>15}"
    )
    for label, elapsed, count, cpu_client, cpu_target in rows:
        print(
            f"{label:28} {elapsed:8.2f} {n / elapsed:8.1f} {count:10d} {cpu_client:10.2f}s {cpu_target:10.2f}s"
            f" {cpu_client * 1000 / n:15.2f} {cpu_target * 1000 / n:15.2f}"
        )
    print()
    rate = {label: n / elapsed for label, elapsed, *_ in rows}
    print(
        "ratio provisiond (lookup + POST) / bare lookup + POST, users/s:  "
        f"{rate['provisiond, lookup + POST'] / rate['bare lookup + POST']:.3f}   (issue 9: >= 0.9)"
    )
    print(
        "ratio provisiond (app known empty) / bare POST, users/s:         "
        f"{rate['provisiond, app known empty'] / rate['bare POST']:.3f}   (issue 9: >= 0.8)"
    )
    print(
        "ratio worker CPU per user (lookup + POST) / bare lookup + POST:  "
        f"{pvd['cpu_self'] / lookup['cpu_self']:.3f}   (issue 9: <= 1.5)"
    )
    for label, detail, counted in (("lookup + POST", pvd, tasks), ("known empty", empty, empty_tasks)):
        print(
            f"# provisiond {label}: enqueue {detail['enqueue'] * 1000:.0f} ms, last task committed "
            f"{detail['last_task_done']:.2f} s after the assignment started, drain returned at "
            f"{detail['elapsed']:.2f} s; tasks {counted}; accounts {int(detail['accounts'])}"
        )
    print(
        "# client CPU = this process (provisiond worker + drain, or the bare client); "
        "target CPU = the scim2-server process"
    )
    print(f"# load average now {load_average()}")

    for label, count in (
        ("provisiond (lookup + POST)", in_target),
        ("provisiond (known empty)", empty_in_target),
        ("bare POST", int(bare["count"])),
        ("bare lookup + POST", int(lookup["count"])),
    ):
        if count != n:
            print(f"FAIL: the {label} target holds {count} users, expected {n}")
            ok = False
    for counted, detail in ((tasks, pvd), (empty_tasks, empty)):
        if counted.get("succeeded", 0) != n or int(detail["accounts"]) != n:
            print(
                f"FAIL: expected {n} succeeded tasks and accounts, got {counted} / {int(detail['accounts'])}"
            )
            ok = False
    print("correctness: OK" if ok else "correctness: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
