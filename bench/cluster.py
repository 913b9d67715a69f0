"""Scale-out on PostgreSQL (issue 13): throughput with 1, 2, 3 worker processes, revocation with
each, and the recovery of a deprovisioning whose worker was SIGKILLed.

    .venv/bin/python bench/cluster.py [--users 600] [--workers 1,2,3] [--latency 0.05]
        [--concurrency 8] [--leavers 20] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Per worker count: a fresh PostgreSQL database, two recording scim2-server targets that add
``latency`` to every request (so the apps' concurrency, not CPU, bounds a run), ``users`` users
assigned to both apps, ``N`` `provisiond worker` processes. Figures: accounts/s from the
assignment to the last task closed, and its ratio to one worker (concurrency bounds it: the ideal
is the same figure, the apps' limits held cluster-wide); then ``leavers`` users deactivated one
at a time, each timed until both apps' accounts are recorded deactivated (p50 / p99).

Recovery: two workers, one app whose target holds every request 2 s; a leaver's deprovisioning is
claimed, its worker SIGKILLed, and the time to the deprovisioning applied by the other worker is
measured (the worker timeout, 30 s by default, is most of it: ``--worker-timeout`` to try others).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as bench

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def workers(
    database_url: str, data_dir: Path, count: int, timeout: float
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "PROVISIOND_DATABASE_URL": database_url,
        "PROVISIOND_SECRET_KEY": bench.BENCH_SECRET_KEY,
        "PROVISIOND_DATA_DIR": str(data_dir),
        "PROVISIOND_CONNECTOR_ALLOW_LOOPBACK": "true",
        "PROVISIOND_WORKER_TIMEOUT_SECONDS": str(timeout),
    }
    processes = []
    try:
        for n in range(count):
            log = (data_dir / f"worker{n}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "provisiond.cli", "worker", "--log-level", "warning"],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                )
            )
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def live_workers(runtime: Any) -> int:
    from sqlalchemy import func, select

    from provisiond.store.tables import WorkerProcess

    with runtime.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(WorkerProcess)) or 0)


def wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.01)


def busy(runtime: Any) -> int:
    counts = bench.task_counts(runtime)
    return counts.get("queued", 0) + counts.get("running", 0)


def deactivated(runtime: Any, user_id: str) -> int:
    from sqlalchemy import func, select

    from provisiond.store.tables import Account

    with runtime.db.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Account).where(
                    Account.user_id == user_id, Account.status == "deactivated"
                )
            ) or 0
        )


def leave(runtime: Any, user_id: str) -> None:
    from provisiond.domain.directory import Lifecycle
    from provisiond.services import directory
    from provisiond.services.context import SYSTEM

    with runtime.db.session() as session:
        directory.change_lifecycle(session, SYSTEM, user_id, Lifecycle.DEACTIVATE)


def one_count(args: argparse.Namespace, count: int) -> dict[str, Any]:
    with bench.workdir() as data_dir, bench.bench_database(args.database_url, data_dir) as url, \
            contextlib.ExitStack() as stack:
        bases = [
            stack.enter_context(bench.recording_scim_target(latency=args.latency))
            for _ in range(2)
        ]
        runtime = bench.make_runtime(url, data_dir)
        group, users = bench.create_directory(runtime, args.users, "Cluster")
        apps = [
            bench.create_enabled_app(runtime, f"app{n}", base, concurrency=args.concurrency)
            for n, base in enumerate(bases)
        ]
        stack.enter_context(workers(url, data_dir, count, args.worker_timeout))
        wait(lambda: live_workers(runtime) == count, 120, "workers up")
        started = time.monotonic()
        for app_id in apps:
            bench.assign_group(runtime, app_id, group)
        wait(lambda: busy(runtime) == 0, 1800, "provisioning")
        seconds = time.monotonic() - started
        latencies = []
        for user in users[: args.leavers]:
            began = time.monotonic()
            leave(runtime, user.id)
            wait(lambda user=user: deactivated(runtime, user.id) == len(apps), 120, "revocation")
            latencies.append(time.monotonic() - began)
        runtime.db.dispose()
        return {
            "workers": count,
            "seconds": seconds,
            "accounts_per_second": len(users) * len(apps) / seconds,
            "revocation": bench.summary(latencies),
        }


def recovery(args: argparse.Namespace) -> float:
    """Seconds from SIGKILL of the worker holding a deprovisioning to it applied elsewhere."""
    from sqlalchemy import select

    from provisiond.store.tables import Task

    with bench.workdir() as data_dir, bench.bench_database(args.database_url, data_dir) as url, \
            bench.recording_scim_target(latency=2.0) as base:
        runtime = bench.make_runtime(url, data_dir)
        group, users = bench.create_directory(runtime, 1, "Recovery")
        app_id = bench.create_enabled_app(runtime, "held", base, concurrency=2)
        with workers(url, data_dir, 2, args.worker_timeout) as processes:
            wait(lambda: live_workers(runtime) == 2, 120, "workers up")
            bench.assign_group(runtime, app_id, group)
            wait(lambda: busy(runtime) == 0, 120, "the account created")
            leaver = users[0].id
            leave(runtime, leaver)

            def holder() -> str | None:
                with runtime.db.session() as session:
                    task = session.scalars(
                        select(Task).where(Task.subject_id == leaver, Task.status == "running")
                    ).first()
                    return task.claimed_by if task else None

            wait(lambda: holder() is not None, 60, "the deprovisioning claimed")
            pid = int(str(holder()).split(":")[1])
            victim = next(p for p in processes if p.pid == pid)
            victim.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            wait(lambda: deactivated(runtime, leaver) == 1, 600, "the deprovisioning taken over")
            seconds = time.monotonic() - killed
        runtime.db.dispose()
        return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--leavers", type=int, default=20)
    parser.add_argument("--worker-timeout", type=float, default=30.0)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--no-recovery", action="store_true")
    args = parser.parse_args(argv)
    bench.banner("cluster", users=args.users, latency=args.latency, concurrency=args.concurrency)
    results = [one_count(args, int(n)) for n in args.workers.split(",")]
    base = results[0]["accounts_per_second"]
    print("| workers | seconds | accounts/s | ratio to 1 | revocation p50 ms | p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in results:
        rev = row["revocation"]
        print(
            f"| {row['workers']} | {row['seconds']:.2f} | {row['accounts_per_second']:.1f} | "
            f"{row['accounts_per_second'] / base:.2f} | {rev['p50'] * 1000:.1f} | "
            f"{rev['p99'] * 1000:.1f} |"
        )
    if not args.no_recovery:
        seconds = recovery(args)
        print(f"recovery after SIGKILL (worker timeout {args.worker_timeout:g} s): {seconds:.2f} s")
    print(f"# load average after: {bench.load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
