"""How fast the ``provisiond`` command starts: ``--help`` and an admin command against a server.

    .venv/bin/python bench/cli_startup.py [--runs 10] [--baseline-src /work/main/src]

Each command runs ``--runs`` times as a fresh ``python -m provisiond.cli`` subprocess. CPU is the
child's user + system time (``resource.getrusage(RUSAGE_CHILDREN)`` around each run), wall the
run's elapsed time; both are medians, and also given as a multiple of ``python -c pass`` timed in
the same run (the interpreter's own start, which no import strategy can save). The admin command
is ``apps list`` against a real provisiond server (API + worker) in its own process, on a fresh
SQLite database with three apps, so its figure is the CLI's own overhead plus one HTTP round trip;
the server's CPU is not counted (it is not the measured child).

``--baseline-src`` runs the same commands with another checkout's ``src`` first on PYTHONPATH
(e.g. the main branch, before lazy imports), for a before/after in one run.

Targets (issue 11, item 12): ``--help`` at most 0.3 s of CPU, an admin command's overhead at
most 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    banner,
    bench_database,
    load_average,
    make_runtime,
    provisiond_server,
    workdir,
)


def timed(command: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median CPU seconds (user + sys) and median wall seconds of ``runs`` runs of ``command``."""
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{command} failed: {done.stderr.decode(errors='replace')[-2000:]}")
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(cpu), statistics.median(wall)


def make_token(database_url: str, data_dir: Path) -> str:
    """A super-admin API token, made on the database as `provisiond token create` does."""
    from provisiond.services import tokens
    from provisiond.services.context import SYSTEM

    runtime = make_runtime(database_url, data_dir)
    try:
        with runtime.db.session() as session:
            return tokens.create_token(session, SYSTEM, "bench")
    finally:
        runtime.stop()


def seed_apps(server: str, token: str) -> None:
    """Three apps for ``apps list`` to print (not timed)."""
    headers = {"Authorization": f"Bearer {token}"}
    for name in ("crm", "wiki", "chat"):
        connector: dict[str, Any] = {
            "type": "scim2", "base_url": f"http://127.0.0.1:9/{name}/scim/v2",
            "auth": {"type": "none"},
        }
        body = {"name": name, "label": name.upper(), "connector": connector}
        httpx.post(f"{server}/api/v1/apps", json=body, headers=headers).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src, for before/after")
    args = parser.parse_args()
    banner("provisiond CLI start-up", runs=args.runs, baseline_src=args.baseline_src)

    with workdir() as work, bench_database(None, work) as database_url:
        token = make_token(database_url, work)
        # A loaded machine can take half a minute to import and migrate the server.
        with provisiond_server(database_url, work, startup_timeout=180) as (server, _):
            seed_apps(server, token)
            base_env = {
                **os.environ, "PROVISIOND_SERVER": server, "PROVISIOND_TOKEN": token,
                "PYTHONWARNINGS": "ignore",
            }
            trees = [("this tree", base_env)]
            if args.baseline_src:
                before_env = {**base_env, "PYTHONPATH": str(args.baseline_src.resolve())}
                trees.insert(0, (f"baseline ({args.baseline_src})", before_env))
            cli = [sys.executable, "-m", "provisiond.cli"]
            empty_cpu, empty_wall = timed([sys.executable, "-c", "pass"], base_env, args.runs)
            print(f"# python -c pass: {empty_cpu:.3f} s CPU, {empty_wall:.3f} s wall")
            print("| tree | command | CPU s | x pass | wall s | x pass |")
            print("|---|---|---:|---:|---:|---:|")
            for label, env in trees:
                for name, extra in (("--help", ["--help"]), ("apps list", ["apps", "list"])):
                    cpu, wall = timed(cli + extra, env, args.runs)
                    print(
                        f"| {label} | `provisiond {name}` | {cpu:.3f} | {cpu / empty_cpu:.1f} "
                        f"| {wall:.3f} | {wall / empty_wall:.1f} |"
                    )
    print(f"# load average at end: {load_average()}")


if __name__ == "__main__":
    main()
