"""Deprovisioning latency: one lifecycle call, until every app shows the account inactive.

    .venv/bin/python bench/deprovision_latency.py [--apps 10] [--users 50]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Set-up (not timed): A=10 scim2-server processes, one app on each (provisioning enabled), one
group of M=50 users (plus --warmup users) assigned to every app, everything provisioned with
``Worker.drain()``; each target is checked to hold all the users.

Timed: a real provisiond server (REST API + in-process worker thread, as ``create_app(runtime=...,
start_worker=True)`` runs it) in its own process. For each user in turn: ``POST
/api/v1/users/{id}/lifecycle/deactivate``, then every target is polled directly
(``GET /Users?filter=userName eq "..."``, every --poll-interval) until all A show
``active: false``. The user's latency is the time from sending the POST to the last app seen
inactive; its resolution is one poll round trip plus the poll interval.

Baseline, same run, same user, same targets: a bare httpx ``PATCH active:false`` (RFC 7644
PatchOp) to the A apps one after the other, and to all A at once; and one round of the A
polling GETs (what the measurement itself costs). Those leave out what the measurement adds
to provisiond's figure only: the pause between polls (up to --poll-interval after the app
changed, for the last of A apps nearly all of it) and the polls' load on the targets while
they work. So, like for like: the accounts made active again (not timed), then the A
PATCHes sent at once with the same pollers started beside them, until all A are seen
inactive ("seen by the same poll").

The warm-up users go first (the server's connectors are built and the targets' configuration
read on first use) and are reported apart.

``--backlog K`` (off by default) assigns K other users to one more app through the API right
before the measured users: the deactivations then queue behind K creates, as they would while
a large group is being provisioned.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    TARGET_PIDS,
    TARGET_TOKEN,
    BenchUser,
    assign_group,
    banner,
    bench_database,
    count_users,
    cpu_seconds,
    create_directory,
    create_enabled_app,
    load_average,
    make_runtime,
    provisiond_server,
    scim_targets,
    summary,
    task_counts,
    workdir,
)

SCIM_JSON = "application/scim+json"
PATCH_INACTIVE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}
PATCH_ACTIVE = {
    **PATCH_INACTIVE,
    "Operations": [{"op": "replace", "path": "active", "value": True}],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=10, help="A, apps (one target process each)")
    parser.add_argument("--users", type=int, default=50, help="M, users measured")
    parser.add_argument(
        "--warmup", type=int, default=2, help="users deactivated first, reported apart"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="each app's concurrency (default 4)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.02, help="pause between polls of one target, s"
    )
    parser.add_argument(
        "--user-timeout",
        type=float,
        default=None,
        help="bound on one user's wait, s (default 15, or 300 with --backlog)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to create a fresh bench_<random> database on",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="K: right before the measured users, assign K other users to one more app through "
        "the API, so that the deactivations are queued behind K creates (default 0: off)",
    )
    args = parser.parse_args(argv)
    if args.user_timeout is None:
        args.user_timeout = 300.0 if args.backlog else 15.0
    if args.apps < 1 or args.users < 1 or args.warmup < 0:
        parser.error("--apps and --users must be at least 1, --warmup at least 0")
    return args


# -- set-up ----------------------------------------------------------------------------------------


def set_up(
    runtime: Any, bases: list[str], args: argparse.Namespace, backlog_base: str | None
) -> tuple[list[BenchUser], list[str], dict[tuple[str, str], str], str, dict[str, str]]:
    from sqlalchemy import select

    from provisiond.engine.worker import Worker
    from provisiond.services import tokens
    from provisiond.services.context import SYSTEM
    from provisiond.store.tables import Account

    total = args.users + args.warmup
    group_id, users = create_directory(runtime, total, "bench-deprovision", prefix="dep")
    app_ids = [
        create_enabled_app(runtime, f"bench-app-{i:02d}", base, concurrency=args.concurrency)
        for i, base in enumerate(bases)
    ]
    for app_id in app_ids:
        assign_group(runtime, app_id, group_id)
    started = time.perf_counter()
    asyncio.run(Worker(runtime.db, runtime.settings, runtime.vault).drain(timeout=240))
    print(
        f"# set-up: provisioned {total} users x {len(bases)} apps in {time.perf_counter() - started:.1f} s"
        f" (not timed); tasks {task_counts(runtime)}"
    )
    for base in bases:
        held = count_users(base)
        if held != total:
            raise SystemExit(f"set-up failed: {base} holds {held} users, expected {total}")
    with runtime.db.session() as session:
        remote = {(a.app_id, a.user_id): a.remote_id for a in session.scalars(select(Account))}
        token = tokens.create_token(session, SYSTEM, "bench")
    backlog: dict[str, str] = {}
    if backlog_base is not None:  # a group of K other users, and one more app, not yet assigned
        backlog_group, _ = create_directory(runtime, args.backlog, "bench-backlog", prefix="bulk")
        backlog_app = create_enabled_app(
            runtime, "bench-backlog", backlog_base, concurrency=args.concurrency
        )
        backlog = {"app_id": backlog_app, "group_id": backlog_group}
    return users, app_ids, remote, token, backlog


# -- the timed part ----------------------------------------------------------------------------------


async def seen_inactive(
    scim: httpx.AsyncClient, login: str, t0: float, deadline: float, pause: float
) -> float:
    """Poll one target until the account is inactive; the seconds since t0 when it was seen so."""
    params = {"filter": f'userName eq "{login}"'}
    while True:
        try:
            response = await scim.get("Users", params=params)
        except httpx.TransportError:  # a kept-alive connection the target closed: poll again
            if time.perf_counter() > deadline:
                raise
            continue
        now = time.perf_counter()
        response.raise_for_status()
        resources = response.json().get("Resources") or []
        if resources and resources[0].get("active") is False:
            return now - t0
        if now > deadline:
            raise TimeoutError(f"{login} still active in {scim.base_url} after {now - t0:.1f} s")
        await asyncio.sleep(pause)


async def patch_inactive(
    scim: httpx.AsyncClient, remote_id: str, body: dict[str, Any] = PATCH_INACTIVE
) -> httpx.Response:
    """The bare baseline: RFC 7644 PATCH of active:false, as provisiond sends it (once more
    when a kept-alive connection turns out closed by the target, as provisiond's would)."""
    try:
        return await scim.patch(
            f"Users/{remote_id}", json=body, headers={"Content-Type": SCIM_JSON}
        )
    except httpx.TransportError:
        return await scim.patch(
            f"Users/{remote_id}", json=body, headers={"Content-Type": SCIM_JSON}
        )


async def bare_seen(
    scims: list[httpx.AsyncClient],
    targets: list[tuple[httpx.AsyncClient, str]],
    login: str,
    args: argparse.Namespace,
) -> float:
    """The bare client's revocation as this bench sees provisiond's: the accounts active
    again (not timed), then the PATCHes sent at once and the same pollers started with them;
    the seconds until every target shows the account inactive."""
    for answer in await asyncio.gather(*(patch_inactive(s, r, PATCH_ACTIVE) for s, r in targets)):
        answer.raise_for_status()
    t0 = time.perf_counter()
    deadline = t0 + args.user_timeout

    async def send() -> None:
        for answer in await asyncio.gather(*(patch_inactive(s, r) for s, r in targets)):
            answer.raise_for_status()

    _, seen = await asyncio.gather(
        send(),
        asyncio.gather(
            *(seen_inactive(scim, login, t0, deadline, args.poll_interval) for scim in scims)
        ),
    )
    return max(seen)


def cpu_now(server_pid: int, bases: list[str]) -> dict[str, float]:
    return {
        "server": cpu_seconds(server_pid),
        "targets": sum(cpu_seconds(TARGET_PIDS[b]) for b in bases),
        "client": cpu_seconds(),
        "wall": time.perf_counter(),
    }


async def measure(
    server: str,
    token: str,
    bases: list[str],
    app_ids: list[str],
    users: list[BenchUser],
    remote: dict[tuple[str, str], str],
    args: argparse.Namespace,
    server_pid: int,
    backlog: dict[str, str],
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The timed loop; also the CPU used by each process over the measured (not warm-up) users."""
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    target_headers = {"Authorization": f"Bearer {TARGET_TOKEN}", "Accept": SCIM_JSON}
    api = httpx.AsyncClient(
        base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    scims = [
        httpx.AsyncClient(base_url=base + "/", headers=target_headers, limits=limits, timeout=30)
        for base in bases
    ]
    rows: list[dict[str, Any]] = []
    cpu_start: dict[str, float] = {}
    try:
        for index, user in enumerate(users):
            if index == args.warmup:
                if (
                    backlog
                ):  # K creates queued (and the worker woken) just before the measured users
                    assigned = await api.post(
                        f"/apps/{backlog['app_id']}/assignments",
                        json={"principal_type": "group", "principal_id": backlog["group_id"]},
                    )
                    assigned.raise_for_status()
                cpu_start = cpu_now(server_pid, bases)
            # provisiond: the lifecycle call, then every app polled until it shows active: false.
            t0 = time.perf_counter()
            response = await api.post(f"/users/{user.id}/lifecycle/deactivate")
            posted = time.perf_counter() - t0
            response.raise_for_status()
            deadline = t0 + args.user_timeout
            per_app = await asyncio.gather(
                *(
                    seen_inactive(scim, user.login, t0, deadline, args.poll_interval)
                    for scim in scims
                )
            )

            # Baselines for the same user: PATCH active:false, sequential then concurrent.
            targets = [
                (scim, remote[(app_id, user.id)])
                for scim, app_id in zip(scims, app_ids, strict=True)
            ]
            t = time.perf_counter()
            for scim, remote_id in targets:
                (await patch_inactive(scim, remote_id)).raise_for_status()
            sequential = time.perf_counter() - t
            t = time.perf_counter()
            for answer in await asyncio.gather(*(patch_inactive(s, r) for s, r in targets)):
                answer.raise_for_status()
            concurrent = time.perf_counter() - t
            t = time.perf_counter()
            await asyncio.gather(
                *(s.get("Users", params={"filter": f'userName eq "{user.login}"'}) for s in scims)
            )
            poll_round = time.perf_counter() - t
            seen_bare = await bare_seen(scims, targets, user.login, args)

            rows.append(
                {
                    "login": user.login,
                    "post": posted,
                    "latency": max(per_app),
                    "first_app": min(per_app),
                    "sequential": sequential,
                    "concurrent": concurrent,
                    "poll_round": poll_round,
                    "bare_seen": seen_bare,
                }
            )
        cpu_end = cpu_now(server_pid, bases)
    finally:
        await api.aclose()
        for scim in scims:
            await scim.aclose()
    return rows, {key: cpu_end[key] - cpu_start[key] for key in cpu_end}


def server_side_breakdown(runtime: Any, user_ids: set[str]) -> dict[str, list[float]]:
    """From the server's own records, in ms: the worker's latency_ms on each deprovision event
    (task queued -> result committed), and each deactivation task split into queued -> claimed
    and claimed -> closed."""
    from sqlalchemy import select

    from provisiond.store.tables import Event, Task

    with runtime.db.session() as session:
        events = session.scalars(select(Event).where(Event.action == "app.user.deprovision")).all()
        tasks = session.scalars(
            select(Task).where(Task.reason == "user.lifecycle.deactivate")
        ).all()
        logged = [
            float(e.details["latency_ms"])
            for e in events
            if e.user_id in user_ids and "latency_ms" in (e.details or {})
        ]
        claimed = [
            (t.claimed_at - t.created_at).total_seconds() * 1000
            for t in tasks
            if t.subject_id in user_ids and t.claimed_at
        ]
        ran = [
            (t.updated_at - t.claimed_at).total_seconds() * 1000
            for t in tasks
            if t.subject_id in user_ids and t.claimed_at
        ]
    return {"logged": logged, "claimed": claimed, "ran": ran}


# -- main --------------------------------------------------------------------------------------------


def line(label: str, values: list[float], unit: float = 1000.0) -> str:
    s = summary([v * unit for v in values])
    return (
        f"{label:44} {int(s['n']):4d} {s['p50']:8.1f} {s['p90']:8.1f} {s['p99']:8.1f} {s['max']:8.1f}"
        f" {s['mean']:8.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    banner(
        "deprovision latency",
        apps=args.apps,
        users=args.users,
        warmup=args.warmup,
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        database=args.database_url or "sqlite (temp dir)",
    )
    with (
        workdir() as wd,
        bench_database(args.database_url, wd) as url,
        scim_targets(args.apps + (1 if args.backlog else 0)) as all_bases,
    ):
        bases, backlog_base = all_bases[: args.apps], (all_bases[-1] if args.backlog else None)
        runtime = make_runtime(url, wd)
        try:
            users, app_ids, remote, token, backlog = set_up(runtime, bases, args, backlog_base)
            runtime.db.dispose()  # the server process owns the database from here on
            with provisiond_server(url, wd) as (server, process):
                rows, cpu = asyncio.run(
                    measure(
                        server, token, bases, app_ids, users, remote, args, process.pid, backlog
                    )
                )
            measured_ids = {u.id for u in users[args.warmup :]}
            server_ms = server_side_breakdown(runtime, measured_ids)
            tasks = task_counts(runtime)
            inactive = [count_inactive(base) for base in bases]
            backlog_done = count_users(backlog_base) if backlog_base else 0
        finally:
            runtime.stop()
            runtime.db.dispose()

    warm, measured = rows[: args.warmup], rows[args.warmup :]
    print()
    print(f"{'milliseconds':44} {'n':>4} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'mean':>8}")
    print(
        line(f"provisiond: POST -> all {args.apps} apps inactive", [r["latency"] for r in measured])
    )
    print(line("provisiond: POST -> first app inactive", [r["first_app"] for r in measured]))
    print(line("provisiond: the lifecycle POST alone", [r["post"] for r in measured]))
    if server_ms["logged"]:
        print(line("server: task queued -> applied (latency_ms)", server_ms["logged"], unit=1.0))
        print(line("server: task queued -> claimed by the worker", server_ms["claimed"], unit=1.0))
        print(line("server: task claimed -> closed", server_ms["ran"], unit=1.0))
    print(line(f"bare PATCH x{args.apps}, sequential", [r["sequential"] for r in measured]))
    print(line(f"bare PATCH x{args.apps}, concurrent", [r["concurrent"] for r in measured]))
    print(
        line(
            f"one poll round (GET filter x{args.apps}, concurrent)",
            [r["poll_round"] for r in measured],
        )
    )
    print(
        line(
            f"bare PATCH x{args.apps}, seen by the same poll",
            [r["bare_seen"] for r in measured],
        )
    )
    if warm:
        print(line("warm-up users: POST -> all apps inactive", [r["latency"] for r in warm]))
    p50 = summary([r["latency"] for r in measured])["p50"]
    p99 = summary([r["latency"] for r in measured])["p99"]
    print()
    bare_p99 = summary([r["concurrent"] for r in measured])["p99"]
    poll_p99 = summary([r["poll_round"] for r in measured])["p99"]
    seen = summary([r["bare_seen"] for r in measured])
    print(
        f"issue 9: p99 provisiond / (bare PATCH concurrent p99 + poll round p99) = "
        f"{p99 / (bare_p99 + poll_p99):.2f}x; like for like, provisiond / bare seen by the same "
        f"poll = p50 {p50 / seen['p50']:.2f}x, p99 {p99 / seen['p99']:.2f}x"
    )
    print(
        f"overhead p50: provisiond / bare concurrent = "
        f"{p50 / summary([r['concurrent'] for r in measured])['p50']:.2f}x, "
        f"provisiond / bare sequential = {p50 / summary([r['sequential'] for r in measured])['p50']:.2f}x"
    )
    n = len(measured)
    print(
        f"# CPU over the {n} measured users ({cpu['wall']:.1f} s wall): provisiond server "
        f"{cpu['server']:.2f} s = {cpu['server'] * 1000 / n:.1f} ms/user = "
        f"{cpu['server'] * 1000 / n / args.apps:.1f} ms per app account; {args.apps} targets "
        f"{cpu['targets']:.2f} s (polls and baselines included); this client {cpu['client']:.2f} s"
        + (" (the server's figure includes the backlog's creates)" if args.backlog else "")
    )
    print(
        f"# load average now {load_average()} (other work on the machine inflates every wall-clock figure)"
    )
    print(f"# tasks {tasks}; inactive accounts per target {inactive}")
    if args.backlog:
        print(
            f"# backlog: {args.backlog} creates queued in one more app before the first measured "
            f"user; {backlog_done} of them done when the measurement ended"
        )
    ok = (
        all(count == len(users) for count in inactive)
        and not tasks.get("dead")
        and (args.backlog > 0 or not tasks.get("queued"))
    )
    print("correctness: OK" if ok else "correctness: FAILED")
    return 0 if ok else 1


def count_inactive(base: str) -> int:
    response = httpx.get(
        f"{base}/Users",
        params={"filter": "active eq false", "count": 0},
        headers={"Authorization": f"Bearer {TARGET_TOKEN}"},
        timeout=30,
    )
    response.raise_for_status()
    return int(response.json()["totalResults"])


if __name__ == "__main__":
    sys.exit(main())
