"""The worker's database thread during a provisioning run: its CPU by piece, and its claim rounds.

    .venv/bin/python bench/db_thread.py [--users 1000] [--concurrency 8] [--latency 0.25]
    # another tree's src against this one:
    # PYTHONPATH=/tmp/base/src:/tmp/base .venv/bin/python /tmp/base/bench/db_thread.py ...

The provisiond phase of bench/provision_throughput.py (lookup + POST, a fresh SQLite database
and scim2-server), with every call the worker hands to its database thread timed there
(``time.thread_time``: that thread's CPU), by function, and the claim rounds counted with the
ones that claimed nothing. ``--latency`` adds that many seconds to every SCIM request, so that
tasks wait at their app's gate long enough to check their lease before sending (engine.leases).
Only same-run ratios or repeated alternation with another tree mean anything on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import provision_throughput
from _support import recording_scim_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    ours, rest = parser.parse_known_args()
    args = provision_throughput.parse_args(["--users", "1000", *rest])
    from provisiond.engine import worker

    cpu: defaultdict[str, float] = defaultdict(float)
    calls: Counter[str] = Counter()
    covered: Counter[str] = Counter()  # tasks handed over in a list (lease checks, writes)
    claims: Counter[str] = Counter()
    in_db = worker.Worker._in_db

    async def timed_in_db(self: Any, function: Any, *call_args: Any) -> Any:
        name = getattr(function, "__name__", repr(function))

        def timed(*inner: Any) -> Any:
            started = time.thread_time()
            try:
                out = function(*inner)
            finally:
                cpu[name] += time.thread_time() - started
            if name == "_claim_and_read":
                claims["rounds"] += 1
                claims["empty"] += not out.tasks
            return out

        calls[name] += 1
        if call_args and isinstance(call_args[0], list):
            covered[name] += len(call_args[0])
        return await in_db(self, timed, *call_args)

    worker.Worker._in_db = timed_in_db  # type: ignore[method-assign]
    if ours.latency:
        provision_throughput.scim_target = lambda: recording_scim_target(latency=ours.latency)
    pvd, in_target, tasks, _ = provision_throughput.run_mode(args, known_empty=False)
    n = args.users
    print(f"users {n}, concurrency {args.concurrency}, latency {ours.latency} s: "
          f"{pvd['elapsed']:.2f} s, {in_target} in the target, tasks {tasks}, "
          f"process CPU {pvd['cpu_self'] * 1000 / n:.2f} ms/user")
    for name in sorted(cpu, key=lambda key: cpu[key], reverse=True):
        print(f"  {name:18} {calls[name]:6d} calls covering {covered[name]:6d} tasks: "
              f"{cpu[name] * 1000:8.1f} ms = {cpu[name] * 1000 / n:.3f} ms/user")
    print(f"  database thread {sum(cpu.values()) * 1000 / n:.3f} ms/user; claim rounds "
          f"{claims['rounds']}, of which empty {claims['empty']}")
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if in_target != n:
        raise SystemExit(f"FAIL: the target holds {in_target} users, expected {n}")


if __name__ == "__main__":
    main()
