"""The SCIM connector alone, against a bare httpx client: event-loop CPU per created user.

    .venv/bin/python bench/connector_alone.py [--rounds 8] [--users 150] [--concurrency 8]
        [--profile connector|bare]
    # another tree's src against this one: PYTHONPATH=/tmp/base/src .venv/bin/python ...

One fresh scim2-server target (``scim_target()``, its own process). Each round creates
``--users`` new users from ``--concurrency`` lanes, the two ways taking turns round by round
(so a slow spell of a shared machine hits both alike):

  * connector: ``ScimConnector.find_user("userName", …)`` then ``create_user(attributes)``,
               the two calls the executor makes for a create (attributes as the default
               mapping gives them, bearer token, the aiohttp transport, loopback allowed);
  * bare:      one pooled ``httpx.AsyncClient``: ``GET /Users?filter=userName eq …`` (answer
               parsed) then ``POST /Users`` with the payload encoded per request
               (``provision_throughput.py``'s bare lookup + POST).

Timed with ``time.thread_time`` (this thread's CPU: the event loop's; the process has no
other busy thread). Printed per mode: the minimum and median per user over the rounds (the
minimum is what the work costs when the machine lets it run), and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import TARGET_TOKEN, bench_profile, count_users, load_average, scim_target

SCIM_JSON = "application/scim+json"


def attributes_of(i: int) -> dict[str, Any]:
    """What the default mapping gives a bench user (bench/_support.create_directory's)."""
    from provisiond.domain.directory import UserStatus
    from provisiond.engine.desired import DirectoryUser, default_mapping

    profile = bench_profile(i, "alone", 6)
    return default_mapping(DirectoryUser(f"u{i}", UserStatus.ACTIVE, profile))


async def lanes(
    items: list[Any], concurrency: int, one: Callable[[Any], Coroutine[Any, Any, None]]
) -> None:
    pending = iter(items)

    async def lane() -> None:
        for item in pending:  # shared: each item is sent once
            await one(item)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def connector_round(connector: Any, batch: list[dict[str, Any]], concurrency: int) -> None:
    async def one(attributes: dict[str, Any]) -> None:
        if await connector.find_user("userName", attributes["userName"]) is not None:
            raise RuntimeError(f"{attributes['userName']} exists already")
        await connector.create_user(attributes)

    await lanes(batch, concurrency, one)


async def bare_round(
    client: httpx.AsyncClient, batch: list[dict[str, Any]], concurrency: int
) -> None:
    async def one(attributes: dict[str, Any]) -> None:
        login = attributes["userName"]
        found = await client.get(
            "Users", params={"filter": f'userName eq "{login}"', "startIndex": 1, "count": 2}
        )
        found.raise_for_status()
        if found.json().get("Resources"):
            raise RuntimeError(f"{login} exists already")
        payload = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], **attributes}
        response = await client.post(
            "Users", content=json.dumps(payload).encode(), headers={"Content-Type": SCIM_JSON}
        )
        if response.status_code != 201:
            raise RuntimeError(f"POST /Users answered {response.status_code}")
        response.json()

    await lanes(batch, concurrency, one)


async def run(args: argparse.Namespace, base: str) -> dict[str, list[float]]:
    from provisiond.connectors.destinations import DestinationPolicy
    from provisiond.connectors.scim import ScimConnector
    from provisiond.domain.apps import BearerAuth, ScimConnectorSettings

    settings = ScimConnectorSettings(base_url=base, auth=BearerAuth(token=TARGET_TOKEN))
    connector = ScimConnector(
        settings, concurrency=args.concurrency, policy=DestinationPolicy(allow_loopback=True)
    )
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    client = httpx.AsyncClient(
        base_url=base + "/",
        headers={"Authorization": f"Bearer {TARGET_TOKEN}", "Accept": SCIM_JSON},
        limits=limits,
        timeout=30,
    )
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    counter = iter(range(10**9))
    per_user: dict[str, list[float]] = {"connector": [], "bare": []}
    try:
        # Warm-up (not timed): discovery, the pools opened, first payload shapes checked.
        warm = [attributes_of(next(counter)) for _ in range(args.concurrency * 2)]
        await connector_round(connector, warm[: args.concurrency], args.concurrency)
        await bare_round(client, warm[args.concurrency :], args.concurrency)
        for r in range(args.rounds):
            order = ("connector", "bare") if r % 2 == 0 else ("bare", "connector")
            for mode in order:
                batch = [attributes_of(next(counter)) for _ in range(args.users)]
                profiling = profiler is not None and mode == args.profile
                started = time.thread_time()
                if profiling:
                    profiler.enable()
                if mode == "connector":
                    await connector_round(connector, batch, args.concurrency)
                else:
                    await bare_round(client, batch, args.concurrency)
                if profiling:
                    profiler.disable()
                per_user[mode].append((time.thread_time() - started) * 1000 / args.users)
    finally:
        await connector.aclose()
        await client.aclose()
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(50)
        print(out.getvalue())
    return per_user


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--users", type=int, default=150, help="users created per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", choices=("connector", "bare"), default=None)
    args = parser.parse_args()
    import provisiond

    print(f"# connector alone: provisiond from {Path(provisiond.__file__).parent}")
    print(f"# load average at start {load_average()}")
    with scim_target() as base:
        per_user = asyncio.run(run(args, base))
        held = count_users(base)
    expected = (args.rounds * 2 * args.users) + args.concurrency * 2
    for mode, values in per_user.items():
        shown = " ".join(f"{v:.2f}" for v in values)
        print(
            f"{mode:10} event-loop CPU ms per user: min {min(values):.3f} "
            f"median {statistics.median(values):.3f}   (rounds: {shown})"
        )
    low = min(per_user["connector"]) / min(per_user["bare"])
    mid = statistics.median(per_user["connector"]) / statistics.median(per_user["bare"])
    print(f"ratio connector / bare: min {low:.3f}, median {mid:.3f}")
    print(f"# load average at end {load_average()}")
    if held != expected:
        print(f"FAIL: the target holds {held} users, expected {expected}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
