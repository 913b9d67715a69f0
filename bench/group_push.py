"""Pushed groups: a group of N members pushed to an app, then C members changed; the SCIM
requests the app received and the time each phase took, against the naive way (one PATCH a member).

    .venv/bin/python bench/group_push.py [--users 5000] [--changes 500] [--seed direct|worker]
        [--http-timeout S] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--profile] [--no-baseline]

The target is one scim2-server process (``provisiond.demo.target``) behind ``RequestLog``, an
ASGI middleware that records every request it answers: the counts below are what the app
received, not what either client believes it sent.

Set-up (not timed): N + C/2 active users, all in a group ``bench-everyone`` assigned to an app
(provisioning enabled, ``features.push_groups`` on); the first N are also in ``bench-pushed``.
Every user gets an account in the target: with ``--seed direct`` (the default) a bare client
POSTs the users (``default_mapping`` payloads) and their account records are written as the
worker leaves them; ``--seed worker`` has the real worker provision them instead (minutes).

Timed, provisiond: the real ``Worker`` in this process, run until no task is queued or running
(retries included, unlike ``Worker.drain()``, which stops when the next retry is over 1 s away).
  1. push: ``pushes.push`` (what ``POST /apps/{id}/push-groups`` calls) queues the group's
     task; timed from the push until the target answered provisiond's last /Groups request.
  2. change: C/2 members removed from ``bench-pushed`` and C/2 other users (who hold accounts
     through ``bench-everyone``) added, in one transaction through the directory service;
     timed from its commit until the target answered provisiond's last /Groups request.
Baseline, same run, same target, its own fresh group: a bare ``httpx.AsyncClient`` loop that
POSTs the empty group, then sends one PATCH per member (N adds), then one PATCH per change
(C/2 ``members[value eq "..."]`` removals, C/2 adds), one request at a time.

Before each read-back and each phase the benchmark waits until the target answers nothing (a
client that timed out does not stop the target working on its request). After each phase both
groups are read back (marked as probes, not counted) and must hold exactly the expected account
ids; so must provisiond's record of what it applied, with no task retried or dead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    PROBE_HEADER,
    TARGET_PIDS,
    TARGET_TOKEN,
    BenchUser,
    Received,
    assign_group,
    banner,
    bench_database,
    count_users,
    cpu_seconds,
    create_directory,
    create_enabled_app,
    load_average,
    make_runtime,
    received,
    recording_scim_target,
    task_counts,
    wait_until_idle,
    workdir,
)

SCIM_JSON = "application/scim+json"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PUSHED, EVERYONE, NAIVE = "bench-pushed", "bench-everyone", "bench-naive"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000, help="N, members of the pushed group")
    parser.add_argument(
        "--changes", type=int, default=500, help="C, members changed (C/2 out, C/2 in)"
    )
    parser.add_argument(
        "--seed",
        choices=("direct", "worker"),
        default="direct",
        help="how the accounts are made before timing: bare POSTs and account records "
        "(default), or the real worker",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="the app's concurrency")
    parser.add_argument(
        "--http-timeout",
        type=float,
        default=None,
        help="the app connector's HTTP timeout, s (default: the connector's own, 10 s)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to create a fresh bench_<random> database on",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on each phase, s")
    parser.add_argument("--profile", action="store_true", help="cProfile the provisiond phases")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the naive client (at N=5000 it takes about half an hour)",
    )
    args = parser.parse_args(argv)
    if args.users < 1 or not 0 <= args.changes // 2 <= args.users:
        parser.error("--users must be at least 1 and --changes at most 2 x --users")
    return args


# -- set-up (not timed) ------------------------------------------------------------------------------


@dataclass
class Setup:
    app_id: str
    pushed_group_id: str
    users: list[BenchUser]  # the N members first, then the C/2 who join in phase 2
    remote: dict[str, str] = field(default_factory=dict)  # user id -> account id in the app


def set_up(runtime: Any, base: str, args: argparse.Namespace) -> Setup:
    from sqlalchemy import insert

    from provisiond.domain.apps import Features
    from provisiond.services import apps, directory
    from provisiond.services.apps import provisioning_of
    from provisiond.services.context import SYSTEM
    from provisiond.store.tables import GroupMember, utcnow

    n, joining = args.users, args.changes - args.changes // 2
    t = time.perf_counter()
    everyone, users = create_directory(runtime, n + joining, EVERYONE, prefix="grp")
    with runtime.db.session() as session:  # no app yet: these memberships queue nothing
        pushed_id = directory.create_group(session, SYSTEM, PUSHED, "benchmark: pushed").id
        now = utcnow()
        session.execute(
            insert(GroupMember),
            [{"group_id": pushed_id, "user_id": u.id, "added_at": now} for u in users[:n]],
        )
    print(f"# set-up: {n + joining} users, 2 groups in {time.perf_counter() - t:.1f} s")

    app_id = create_enabled_app(
        runtime,
        "bench-groups",
        base,
        concurrency=args.concurrency,
        timeout_seconds=args.http_timeout,
    )
    with runtime.db.session() as session:
        app = apps.get_app(session, app_id)
        current = provisioning_of(app)
        features = Features(**{**current.features.model_dump(), "push_groups": True})
        apps.set_provisioning(session, SYSTEM, app, current.model_copy(update={"features": features}))
    setup = Setup(app_id, pushed_id, users)

    t = time.perf_counter()
    if args.seed == "worker":
        assign_group(runtime, app_id, everyone)
        asyncio.run(settle(runtime, args.timeout))
    else:
        seed_directly(runtime, base, setup, everyone, args.concurrency)
    setup.remote = account_ids(runtime, app_id)
    held = count_users(base)
    print(
        f"# set-up: {len(setup.remote)} accounts ({args.seed}) in {time.perf_counter() - t:.1f} s;"
        f" the target holds {held} users"
    )
    if held != len(users) or len(setup.remote) != len(users):
        raise SystemExit(f"set-up failed: {held} users in the target, {len(setup.remote)} accounts")
    return setup


def seed_directly(
    runtime: Any, base: str, setup: Setup, everyone: str, concurrency: int
) -> None:
    """The users POSTed by a bare client, then the assignment and the account records written
    as the worker leaves them, in one transaction that queues no task."""
    from sqlalchemy import insert

    from provisiond.store.tables import Account, Assignment, utcnow

    created = asyncio.run(post_users(base, setup.users, concurrency))
    now = utcnow()
    with runtime.db.session() as session:
        session.add(Assignment(app_id=setup.app_id, principal_type="group", principal_id=everyone))
        rows = []
        for user in setup.users:
            resource = created[user.login]
            applied = {k: v for k, v in resource.items() if k not in ("id", "meta", "schemas")}
            rows.append(
                {
                    "app_id": setup.app_id,
                    "user_id": user.id,
                    "remote_id": resource["id"],
                    "status": "active",
                    "applied": applied,
                    "last_synced_at": now,
                    "created_at": now,
                }
            )
        session.execute(insert(Account), rows)


async def post_users(base: str, users: list[BenchUser], concurrency: int) -> dict[str, Any]:
    created: dict[str, Any] = {}
    pending = iter(users)
    async with scim_client(base, concurrency) as client:

        async def lane() -> None:
            for user in pending:  # shared: each user is sent once
                response = await client.post("Users", json=user.scim_payload())
                if response.status_code != 201:
                    raise RuntimeError(f"POST /Users answered {response.status_code}")
                created[user.login] = response.json()

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return created


def account_ids(runtime: Any, app_id: str) -> dict[str, str]:
    from sqlalchemy import select

    from provisiond.store.tables import Account

    with runtime.db.session() as session:
        rows = session.execute(
            select(Account.user_id, Account.remote_id).where(
                Account.app_id == app_id, Account.status == "active"
            )
        ).all()
    return {user_id: remote_id for user_id, remote_id in rows if remote_id}


def scim_client(base: str, concurrency: int = 1, *, probe: bool = False) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {TARGET_TOKEN}", "Accept": SCIM_JSON}
    if probe:
        headers[PROBE_HEADER] = "1"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base + "/", headers=headers, limits=limits, timeout=900)


def remote_members(base: str, remote_id: str) -> tuple[str, set[str]]:
    """(displayName, member ids) of a group in the target, read back as a probe."""

    async def read() -> tuple[str, set[str]]:
        async with scim_client(base, probe=True) as client:
            response = await client.get(f"Groups/{remote_id}")
            response.raise_for_status()
            body = response.json()
            return body["displayName"], {m["value"] for m in body.get("members") or []}

    wait_until_idle(base)
    return asyncio.run(read())


# -- measuring -------------------------------------------------------------------------------------


@dataclass
class Phase:
    """What one client made the target do in one phase (the benchmark's probes left out)."""

    seconds: float
    requests: list[Received]
    cpu_client: float
    cpu_target: float
    t0: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def groups(self) -> int:
        return sum(1 for r in self.requests if r.resource == "Groups")

    @property
    def other(self) -> int:
        return len(self.requests) - self.groups

    @property
    def busy(self) -> float:
        """Seconds the target spent answering these requests (summed)."""
        return sum(r.ended - r.started for r in self.requests)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.requests if r.status >= 400)

    @property
    def by_key(self) -> str:
        counts = Counter(r.key for r in self.requests)
        return ", ".join(f"{key} {count}" for key, count in sorted(counts.items()))

    def timeline(self) -> list[str]:
        return [
            f"#   +{r.started - self.t0:7.2f} s  {r.key:28} {r.status}  "
            f"{(r.ended - r.started) * 1000:9.0f} ms"
            for r in sorted(self.requests, key=lambda r: r.started)
        ]


class Meter:
    """The target's request log and both processes' CPU, from one mark to the next."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.since = 0
        self.mark()

    def mark(self) -> None:
        wait_until_idle(self.base)
        self.since += len(received(self.base, self.since)[0])
        self.cpu = cpu_seconds(), cpu_seconds(TARGET_PIDS[self.base])

    def phase(self, seconds: float | None, t0: float) -> Phase:
        """The phase since the mark; ``seconds`` None: until the last /Groups request ended."""
        wait_until_idle(self.base)  # requests a client gave up on are still being answered
        requests = [r for r in received(self.base, self.since)[0] if not r.probe]
        cpu_client = cpu_seconds() - self.cpu[0]
        cpu_target = cpu_seconds(TARGET_PIDS[self.base]) - self.cpu[1]
        if seconds is None:
            ends = [r.ended for r in requests if r.resource == "Groups"]
            seconds = max(ends) - t0 if ends else float("nan")
        return Phase(seconds, requests, cpu_client, cpu_target, t0)


# -- provisiond ------------------------------------------------------------------------------------


def unsettled(runtime: Any) -> int:
    from sqlalchemy import func, select

    from provisiond.engine import queue
    from provisiond.store.tables import Task

    with runtime.db.session() as session:
        count: int = session.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.status.in_((queue.QUEUED, queue.RUNNING)))
        )
    return count


async def settle(runtime: Any, timeout: float) -> bool:
    """Run a fresh worker until no task is queued or running; False if ``timeout`` ran out."""
    from provisiond.engine.worker import Worker

    worker = Worker(runtime.db, runtime.settings, runtime.vault)
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if not unsettled(runtime):
                return True
        return False
    finally:
        stop.set()
        await runner


def run_worker(runtime: Any, args: argparse.Namespace, profiler: cProfile.Profile | None) -> dict[str, Any]:
    if profiler:
        profiler.enable()
    try:
        settled = asyncio.run(settle(runtime, args.timeout))
    finally:
        if profiler:
            profiler.disable()
    return {"settled_at": time.time(), "settled": settled}


def provisiond_push(
    runtime: Any, meter: Meter, setup: Setup, args: argparse.Namespace, profiler: Any
) -> Phase:
    from provisiond.services import pushes
    from provisiond.services.context import SYSTEM

    meter.mark()
    started = time.time()
    with runtime.db.session() as session:
        pushes.push(session, SYSTEM, setup.app_id, setup.pushed_group_id)
    committed = time.time()
    worker = run_worker(runtime, args, profiler)
    phase = meter.phase(None, started)
    phase.detail = {"transaction": committed - started, **worker}
    return phase


def provisiond_change(
    runtime: Any, meter: Meter, setup: Setup, args: argparse.Namespace, profiler: Any
) -> Phase:
    from provisiond.services import directory
    from provisiond.services.context import SYSTEM

    leaving, joining = changed_users(setup, args)
    meter.mark()
    started = time.time()
    with runtime.db.session() as session:
        for user in leaving:
            directory.remove_member(session, SYSTEM, setup.pushed_group_id, user.id)
        for user in joining:
            directory.add_member(session, SYSTEM, setup.pushed_group_id, user.id)
    committed = time.time()
    worker = run_worker(runtime, args, profiler)
    # Timed from the commit (the worker cannot see the change before); the transaction apart.
    phase = meter.phase(None, committed)
    phase.detail = {"transaction": committed - started, **worker}
    return phase


def changed_users(setup: Setup, args: argparse.Namespace) -> tuple[list[BenchUser], list[BenchUser]]:
    n, leaving = args.users, args.changes // 2
    return setup.users[:leaving], setup.users[n : n + args.changes - leaving]


def expected_members(setup: Setup, args: argparse.Namespace, phase: int) -> set[str]:
    n = args.users
    if phase == 1:
        members = setup.users[:n]
    else:
        leaving, joining = changed_users(setup, args)
        members = setup.users[len(leaving) : n] + joining
    return {setup.remote[u.id] for u in members}


def provisiond_record(runtime: Any, setup: Setup) -> tuple[str | None, set[str], str | None]:
    """(remote group id, member ids provisiond recorded as applied, last error)."""
    from sqlalchemy import select

    from provisiond.engine import group_members
    from provisiond.store.tables import PushedGroup

    with runtime.db.session() as session:
        row = session.scalar(
            select(PushedGroup).where(
                PushedGroup.app_id == setup.app_id, PushedGroup.group_id == setup.pushed_group_id
            )
        )
        if row is None:
            return None, set(), "not pushed"
        return row.remote_id, set(group_members.applied(session, row.id)), row.last_error


def group_trouble(runtime: Any, app_id: str) -> list[str]:
    """The group reconciles that did not succeed at once: retries and failures, as logged."""
    from sqlalchemy import select

    from provisiond.store.tables import Event

    with runtime.db.session() as session:
        events = session.scalars(
            select(Event)
            .where(
                Event.app_id == app_id,
                Event.action.in_(("app.group.sync", "task.dead")),
                Event.outcome.in_(("retry", "failure")),
            )
            .order_by(Event.id)
        ).all()
        return [f"{e.time:%H:%M:%S} {e.outcome}: {e.message}" for e in events]


# -- the naive baseline ------------------------------------------------------------------------------


def patch_body(operation: dict[str, Any]) -> bytes:
    return json.dumps({"schemas": [PATCH_OP], "Operations": [operation]}).encode()


async def naive_requests(
    base: str, group_id: str | None, adds: list[str], removes: list[str]
) -> tuple[str, float]:
    """One request at a time: the group POSTed empty when ``group_id`` is None, then one PATCH
    per member removed (RFC 7644 §3.5.2.2 value filter) and one per member added."""
    headers = {"Content-Type": SCIM_JSON}
    bodies = [
        patch_body({"op": "remove", "path": f'members[value eq "{member}"]'}) for member in removes
    ] + [patch_body({"op": "add", "path": "members", "value": [{"value": m}]}) for m in adds]
    async with scim_client(base) as client:
        started = time.perf_counter()
        if group_id is None:
            body = {"schemas": [CORE_GROUP], "displayName": NAIVE, "members": []}
            response = await client.post("Groups", content=json.dumps(body), headers=headers)
            if response.status_code != 201:
                raise RuntimeError(f"POST /Groups answered {response.status_code}")
            group_id = str(response.json()["id"])
        for content in bodies:
            response = await client.patch(f"Groups/{group_id}", content=content, headers=headers)
            if response.status_code not in (200, 204):
                raise RuntimeError(f"PATCH /Groups answered {response.status_code}")
        return group_id, time.perf_counter() - started


def naive_phase(
    meter: Meter, base: str, group_id: str | None, adds: list[str], removes: list[str]
) -> tuple[str, Phase]:
    meter.mark()
    t0 = time.time()
    group_id, seconds = asyncio.run(naive_requests(base, group_id, adds, removes))
    return group_id, meter.phase(seconds, t0)


# -- main --------------------------------------------------------------------------------------------


def row(title: str, phase: Phase) -> str:
    per = phase.busy * 1000 / max(1, len(phase.requests))
    return (
        f"{title:36} {len(phase.requests):9d} {phase.groups:8d} {phase.other:6d}"
        f" {phase.seconds:9.2f} {phase.busy:9.2f} {per:8.1f} {phase.cpu_client:9.2f}"
        f" {phase.cpu_target:9.2f}"
    )


def check(label: str, found: set[str], expected: set[str], problems: list[str]) -> None:
    if found != expected:
        problems.append(
            f"{label}: {len(found)} members, {len(found - expected)} unexpected, "
            f"{len(expected - found)} missing (expected {len(expected)})"
        )


def print_profile(profiler: cProfile.Profile) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n, c = args.users, args.changes
    leaving = c // 2
    banner(
        "group push",
        users=n,
        changes=f"{c} ({leaving} out, {c - leaving} in)",
        seed=args.seed,
        concurrency=args.concurrency,
        http_timeout=args.http_timeout or "connector default",
        database=args.database_url or "sqlite (temp dir)",
    )
    profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not wall
    problems: list[str] = []
    naive: dict[str, Phase] = {}
    with (
        workdir() as wd,
        bench_database(args.database_url, wd) as url,
        recording_scim_target() as base,
    ):
        runtime = make_runtime(url, wd)
        try:
            setup = set_up(runtime, base, args)
            meter = Meter(base)
            expected = {1: expected_members(setup, args, 1), 2: expected_members(setup, args, 2)}

            push = provisiond_push(runtime, meter, setup, args, profiler)
            remote_id, record, error = provisiond_record(runtime, setup)
            if remote_id is None:
                raise SystemExit(f"FAIL: nothing pushed: {group_trouble(runtime, setup.app_id)}")
            name, members = remote_members(base, remote_id)
            check("provisiond, after the push: the app's group", members, expected[1], problems)
            check("provisiond, after the push: its record", record, expected[1], problems)
            if name != PUSHED or error:
                problems.append(f"provisiond, after the push: name {name!r}, last error {error!r}")
            trouble_push = group_trouble(runtime, setup.app_id)

            change = provisiond_change(runtime, meter, setup, args, profiler)
            _, record, error = provisiond_record(runtime, setup)
            members = remote_members(base, remote_id)[1]
            check("provisiond, after the change: the app's group", members, expected[2], problems)
            check("provisiond, after the change: its record", record, expected[2], problems)
            if error:
                problems.append(f"provisiond, after the change: last error {error!r}")
            trouble = group_trouble(runtime, setup.app_id)
            trouble_change = trouble[len(trouble_push) :]
            tasks = task_counts(runtime)

            if not args.no_baseline:
                leaving_users, joining_users = changed_users(setup, args)
                naive_id, naive["push"] = naive_phase(meter, base, None, sorted(expected[1]), [])
                members = remote_members(base, naive_id)[1]
                check("naive, after the push", members, expected[1], problems)
                naive["change"] = naive_phase(
                    meter,
                    base,
                    naive_id,
                    [setup.remote[u.id] for u in joining_users],
                    [setup.remote[u.id] for u in leaving_users],
                )[1]
                members = remote_members(base, naive_id)[1]
                check("naive, after the change", members, expected[2], problems)
        finally:
            runtime.stop()
            runtime.db.dispose()

    print()
    print(
        f"{'':36} {'requests':>9} {'/Groups':>8} {'other':>6} {'seconds':>9}"
        f" {'target s':>9} {'ms/req':>8} {'client':>9} {'target':>9}"
    )
    print(f"{'':36} {'':>9} {'':>8} {'':>6} {'':>9} {'busy':>9} {'':>8} {'CPU s':>9} {'CPU s':>9}")
    print(f"1. push a group of {n} members")
    print(row("  provisiond (push -> group equal)", push))
    if "push" in naive:
        print(row("  naive (POST + 1 PATCH per member)", naive["push"]))
    print(f"2. change {c} members ({leaving} out, {c - leaving} in)")
    print(row("  provisiond (commit -> group equal)", change))
    if "change" in naive:
        print(row("  naive (1 PATCH per change)", naive["change"]))
    print()
    for title, ours in (("push", push), ("change", change)):
        line = f"{title}: provisiond sent {len(ours.requests)} requests ({ours.by_key})"
        if title in naive:
            theirs = naive[title]
            line += (
                f"; naive {len(theirs.requests)}: "
                f"{len(theirs.requests) / max(1, len(ours.requests)):.0f}x the requests, "
                f"{theirs.seconds / ours.seconds:.1f}x the time"
            )
        print(line)
    for title, phase, trouble in (("push", push, trouble_push), ("change", change, trouble_change)):
        d = phase.detail
        print(
            f"# provisiond {title}: transaction {d['transaction'] * 1000:.0f} ms; tasks settled "
            f"{d['settled_at'] - phase.t0:.2f} s after"
            + ("" if d["settled"] else f" (NOT within --timeout {args.timeout:g} s)")
            + "; the requests it sent (start after t0, status, time the target took):"
        )
        print("\n".join(phase.timeline()[:40]))
        for line in trouble:
            print(f"#   worker: {line}")
    print(
        "# seconds: provisiond from the push (or the change's commit) until the target answered "
        "its last /Groups request; naive from its first request to its last answer. target busy: "
        "time the target spent answering, summed. client CPU: this process (the worker and the "
        "benchmark's 50 ms poll of the task table, about 3 ms each; or the naive loop). other: "
        "GET /ServiceProviderConfig (each phase runs a fresh worker, which discovers the app again)"
    )
    print(f"# tasks {tasks}; load average now {load_average()}")
    phases = [push, change, *naive.values()]
    if failed := sum(p.failed for p in phases):
        problems.append(f"{failed} requests answered with an error status")
    if not push.detail["settled"] or not change.detail["settled"]:
        problems.append(f"tasks still queued or running after --timeout {args.timeout:g} s")
    if tasks.get("dead"):
        problems.append(f"dead tasks: {tasks}")
    if trouble_push or trouble_change:
        problems.append(
            f"the group's reconcile was retried or failed "
            f"({len(trouble_push) + len(trouble_change)} times, see 'worker:' above)"
        )
    if profiler:
        print_profile(profiler)
    for problem in problems:
        print(f"FAIL: {problem}")
    print("correctness: OK" if not problems else "correctness: FAILED")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
