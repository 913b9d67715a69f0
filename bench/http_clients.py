"""HTTP client stacks against a real SCIM target: httpx.AsyncClient against aiohttp.ClientSession.

    (aiohttp is a project dependency since bench/RESULTS.md §7: the connector's transport)
    .venv/bin/python bench/http_clients.py [--users 2000] [--concurrency 8] [--repeats 3]
        [--timeout 240] [--budget 1800] [--clients httpx,httpx-trust_env=False,...]
        [--json results.json]

Each run sends N users to its own fresh scim2-server target (``scim_target()``, uvicorn on
127.0.0.1, a separate process) from C concurrent lanes of one pooled client, in two modes:

  * POST:          one ``POST /Users`` per user;
  * lookup + POST: ``GET /Users?filter=userName eq "..."`` then ``POST /Users``, the two round
    trips the executor makes for a create.

Clients (all on the default asyncio loop, pool of C connections, bearer token and Accept in the
client's default headers, the body encoded per request with ``json.dumps(...).encode()`` as
``ScimConnector._send`` does, every response body parsed as JSON):

  * ``httpx``                  ``httpx.AsyncClient``, as the connector builds it (http2 off, the
                               default; trust_env=True, the default), ``content=bytes``;
  * ``httpx-trust_env=False``  the same with ``trust_env=False``;
  * ``httpx-json=``            the same, the body given as ``json=payload`` (httpx encodes it);
  * ``aiohttp``                ``aiohttp.ClientSession`` + ``TCPConnector(limit=C)``,
                               ``data=bytes``, ``await response.json(content_type=None)``.

HTTP/2 is not measured on: uvicorn speaks only HTTP/1.1, and over cleartext http:// httpx
negotiates HTTP/1.1 even with ``http2=True`` (no ALPN without TLS).

Timed: from the first request to the last response, after a warm-up of C x 3 lookup GETs that
opens every pooled connection (not counted). CPU seconds are read from /proc for this process
(the client; the payload dicts are built beforehand) and for the target process over the same
window. The runs go round-robin (rep 1: every client, each mode; rep 2: the same, the clients'
order rotated; ...) so that slow spells of a shared machine hit every client alike; the table
gives medians, with the 1-minute load average at the start of each run.

Also, without network (bounded loops in this process): the cost of ``build_request`` with
``json=`` against ``content=json.dumps(...).encode()``, and of building a client.

Bounded: N x repeats x clients x 2 runs, each under --timeout s, and no new run starts once
--budget s have passed. Every target is checked to hold exactly N users afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    LOOPBACK,
    TARGET_PIDS,
    TARGET_TOKEN,
    BenchUser,
    banner,
    bench_profile,
    count_users,
    cpu_seconds,
    load_average,
    scim_target,
)

SCIM_JSON = "application/scim+json"
DEFAULT_HEADERS = {"Authorization": f"Bearer {TARGET_TOKEN}", "Accept": SCIM_JSON}
POST_HEADERS = {"Content-Type": SCIM_JSON}
CLIENTS = ("httpx", "httpx-trust_env=False", "httpx-json=", "aiohttp")
MODES = ("POST", "lookup + POST")
WARMUP_PER_LANE = 3

Payload = tuple[str, dict[str, Any]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000, help="N, users per run")
    parser.add_argument("--concurrency", type=int, default=8, help="C, concurrent lanes")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration")
    parser.add_argument("--timeout", type=float, default=240.0, help="bound on one run, s")
    parser.add_argument(
        "--budget", type=float, default=1800.0, help="no new run starts after this many s"
    )
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help=f"comma-separated subset of {CLIENTS}"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every run here")
    args = parser.parse_args(argv)
    args.clients = [name.strip() for name in args.clients.split(",") if name.strip()]
    unknown = set(args.clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients {sorted(unknown)}; known: {CLIENTS}")
    if args.users < 1 or args.concurrency < 1 or args.repeats < 1:
        parser.error("--users, --concurrency and --repeats must be at least 1")
    return args


def make_payloads(n: int) -> list[Payload]:
    """N (userName, SCIM User dict) as provisiond's default_mapping builds them (not timed)."""
    payloads: list[Payload] = []
    for i in range(n):
        profile = bench_profile(i)
        login = profile["login"]
        user = BenchUser(str(uuid.uuid4()), login, "active", profile)
        payloads.append((login, user.scim_payload()))
    return payloads


def lookup_params(login: str) -> dict[str, Any]:
    return {"filter": f'userName eq "{login}"', "startIndex": 1, "count": 2}


@dataclass
class Run:
    client: str
    mode: str
    rep: int
    users: int
    elapsed: float
    cpu_client: float
    cpu_target: float
    in_target: int
    load_start: str
    load_end: str

    @property
    def load1(self) -> float:
        return float(self.load_start.split()[0])


@dataclass
class Window:
    elapsed: float
    cpu_client: float
    cpu_target: float


async def timed(lanes: Callable[[], Any], target_pid: int) -> Window:
    gc.collect()
    cpu_client, cpu_target = cpu_seconds(), cpu_seconds(target_pid)
    started = time.perf_counter()
    await lanes()
    elapsed = time.perf_counter() - started
    return Window(elapsed, cpu_seconds() - cpu_client, cpu_seconds(target_pid) - cpu_target)


# -- httpx -------------------------------------------------------------------------------------------


async def run_httpx(
    base: str,
    target_pid: int,
    payloads: list[Payload],
    concurrency: int,
    *,
    lookup: bool,
    trust_env: bool = True,
    use_json: bool = False,
) -> Window:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base + "/",
        headers=DEFAULT_HEADERS,
        limits=limits,
        timeout=30,
        trust_env=trust_env,
    ) as client:

        async def warm(lane: int) -> None:
            for i in range(WARMUP_PER_LANE):
                found = await client.get("Users", params=lookup_params(f"warmup-{lane}-{i}"))
                found.raise_for_status()
                found.json()

        await asyncio.gather(*(warm(lane) for lane in range(concurrency)))
        pending = iter(payloads)

        async def one_lane() -> None:
            for login, payload in pending:  # a shared iterator: each payload is sent once
                if lookup:
                    found = await client.get("Users", params=lookup_params(login))
                    if found.status_code != 200:
                        raise RuntimeError(f"GET /Users answered {found.status_code}")
                    if found.json().get("Resources"):
                        raise RuntimeError(f"{login} exists already in a fresh target")
                if use_json:
                    response = await client.post("Users", json=payload, headers=POST_HEADERS)
                else:
                    response = await client.post(
                        "Users", content=json.dumps(payload).encode(), headers=POST_HEADERS
                    )
                if response.status_code != 201:
                    raise RuntimeError(
                        f"POST /Users answered {response.status_code}: {response.text[:200]}"
                    )
                if "id" not in response.json():
                    raise RuntimeError("POST /Users answered no id")

        async def lanes() -> None:
            await asyncio.gather(*(one_lane() for _ in range(concurrency)))

        return await timed(lanes, target_pid)


# -- aiohttp -----------------------------------------------------------------------------------------


async def run_aiohttp(
    base: str, target_pid: int, payloads: list[Payload], concurrency: int, *, lookup: bool
) -> Window:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(
        base_url=base + "/",
        connector=connector,
        headers=DEFAULT_HEADERS,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:

        async def warm(lane: int) -> None:
            for i in range(WARMUP_PER_LANE):
                params = lookup_params(f"warmup-{lane}-{i}")
                async with session.get("Users", params=params) as found:
                    found.raise_for_status()
                    await found.json(content_type=None)

        await asyncio.gather(*(warm(lane) for lane in range(concurrency)))
        pending = iter(payloads)

        async def one_lane() -> None:
            for login, payload in pending:
                if lookup:
                    async with session.get("Users", params=lookup_params(login)) as found:
                        if found.status != 200:
                            raise RuntimeError(f"GET /Users answered {found.status}")
                        if (await found.json(content_type=None)).get("Resources"):
                            raise RuntimeError(f"{login} exists already in a fresh target")
                async with session.post(
                    "Users", data=json.dumps(payload).encode(), headers=POST_HEADERS
                ) as response:
                    if response.status != 201:
                        text = await response.text()
                        raise RuntimeError(f"POST /Users answered {response.status}: {text[:200]}")
                    if "id" not in await response.json(content_type=None):
                        raise RuntimeError("POST /Users answered no id")

        async def lanes() -> None:
            await asyncio.gather(*(one_lane() for _ in range(concurrency)))

        return await timed(lanes, target_pid)


# -- one run -----------------------------------------------------------------------------------------


def one_run(
    client: str, mode: str, rep: int, payloads: list[Payload], args: argparse.Namespace
) -> Run:
    lookup = mode == "lookup + POST"
    load_start = load_average()
    with scim_target() as base:
        if not base.startswith(f"http://{LOOPBACK}:"):
            raise SystemExit(f"refusing a target that is not on {LOOPBACK}: {base}")
        pid = TARGET_PIDS[base]
        c = args.concurrency
        if client == "aiohttp":
            work = run_aiohttp(base, pid, payloads, c, lookup=lookup)
        else:
            work = run_httpx(
                base,
                pid,
                payloads,
                c,
                lookup=lookup,
                trust_env=client != "httpx-trust_env=False",
                use_json=client == "httpx-json=",
            )
        window = asyncio.run(asyncio.wait_for(work, args.timeout))
        in_target = count_users(base)
    return Run(
        client,
        mode,
        rep,
        len(payloads),
        window.elapsed,
        window.cpu_client,
        window.cpu_target,
        in_target,
        load_start,
        load_average(),
    )


# -- without network ---------------------------------------------------------------------------------


def per_call(fn: Callable[[], Any], calls: int, batches: int = 5) -> float:
    """Median over ``batches`` of the CPU seconds per call (time.process_time)."""
    results = []
    for _ in range(batches):
        gc.collect()
        started = time.process_time()
        for _ in range(calls):
            fn()
        results.append((time.process_time() - started) / calls)
    return statistics.median(results)


def offline_costs(payloads: list[Payload]) -> list[tuple[str, float, str]]:
    """(what, microseconds per call, unit) for request building and client construction."""
    _, payload = payloads[0]
    rows: list[tuple[str, float, str]] = []
    client = httpx.AsyncClient(base_url=f"http://{LOOPBACK}:9/v2/", headers=DEFAULT_HEADERS)
    try:
        rows.append(
            (
                "httpx build_request POST content=json.dumps(payload).encode()",
                per_call(
                    lambda: client.build_request(
                        "POST", "Users", content=json.dumps(payload).encode(), headers=POST_HEADERS
                    ),
                    5000,
                )
                * 1e6,
                "us/request",
            )
        )
        rows.append(
            (
                "httpx build_request POST json=payload",
                per_call(
                    lambda: client.build_request(
                        "POST", "Users", json=payload, headers=POST_HEADERS
                    ),
                    5000,
                )
                * 1e6,
                "us/request",
            )
        )
        rows.append(
            (
                "  of which json.dumps(payload).encode() alone",
                per_call(lambda: json.dumps(payload).encode(), 20000) * 1e6,
                "us/request",
            )
        )
        rows.append(
            (
                "httpx build_request GET params=filter",
                per_call(
                    lambda: client.build_request("GET", "Users", params=lookup_params("x.bench")),
                    5000,
                )
                * 1e6,
                "us/request",
            )
        )
    finally:
        asyncio.run(client.aclose())

    def build_httpx(trust_env: bool) -> None:
        built = httpx.AsyncClient(
            base_url=f"http://{LOOPBACK}:9/v2/", headers=DEFAULT_HEADERS, trust_env=trust_env
        )
        asyncio.run(built.aclose())

    for trust_env in (True, False):
        rows.append(
            (
                f"httpx.AsyncClient(trust_env={trust_env}) + aclose",
                per_call(lambda t=trust_env: build_httpx(t), 20, batches=3) * 1e6,
                "us/client",
            )
        )
    return rows


# -- figures -----------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(runs: list[Run], n: int) -> dict[tuple[str, str], dict[str, float]]:
    medians: dict[tuple[str, str], dict[str, float]] = {}
    print()
    print(
        f"{'client':24} {'mode':14} {'runs':>4} {'wall s':>7} {'users/s':>8}"
        f" {'client ms/user':>15} {'client ms/req':>14} {'target ms/user':>15}"
        f"  load1 at start (median; each run)"
    )
    for mode in MODES:
        for client in CLIENTS:
            mine = [r for r in runs if r.client == client and r.mode == mode]
            if not mine:
                continue
            requests = 2 if mode == "lookup + POST" else 1
            m = {
                "runs": len(mine),
                "elapsed": median([r.elapsed for r in mine]),
                "rate": median([r.users / r.elapsed for r in mine]),
                "client_ms": median([r.cpu_client * 1000 / r.users for r in mine]),
                "target_ms": median([r.cpu_target * 1000 / r.users for r in mine]),
                "load1": median([r.load1 for r in mine]),
            }
            medians[(client, mode)] = m
            loads = ", ".join(f"{r.load1:.2f}" for r in mine)
            print(
                f"{client:24} {mode:14} {m['runs']:4d} {m['elapsed']:7.2f} {m['rate']:8.1f}"
                f" {m['client_ms']:15.3f} {m['client_ms'] / requests:14.3f}"
                f" {m['target_ms']:15.3f}  {m['load1']:.2f} ({loads})"
            )
    print()
    for mode in MODES:
        base, other = medians.get(("httpx", mode)), medians.get(("aiohttp", mode))
        if base and other:
            per_rep = []
            for rep in sorted({r.rep for r in runs}):
                pair = {
                    r.client: r
                    for r in runs
                    if r.mode == mode and r.rep == rep and r.client in ("httpx", "aiohttp")
                }
                if len(pair) == 2:
                    per_rep.append(pair["aiohttp"].cpu_client / pair["httpx"].cpu_client)
            reps = ", ".join(f"{x:.2f}" for x in per_rep)
            print(
                f"{mode}: client CPU per user aiohttp / httpx = "
                f"{other['client_ms'] / base['client_ms']:.2f} (medians; per rep: {reps}); "
                f"httpx - aiohttp = {base['client_ms'] - other['client_ms']:.2f} ms/user; "
                f"wall users/s aiohttp / httpx = {other['rate'] / base['rate']:.2f}"
            )
    return medians


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    versions = {"httpx": httpx.__version__}
    if "aiohttp" in args.clients:
        try:
            import aiohttp
            from aiohttp import http_parser
        except ImportError:
            raise SystemExit("aiohttp is not installed: .venv/bin/pip install aiohttp") from None
        versions["aiohttp"] = aiohttp.__version__
        versions["aiohttp parser"] = http_parser.HttpResponseParser.__module__
    banner(
        "HTTP client stacks",
        users=args.users,
        concurrency=args.concurrency,
        repeats=args.repeats,
        clients="/".join(args.clients),
        **versions,
    )
    t = time.perf_counter()
    payloads = make_payloads(args.users)
    print(f"# payloads: {args.users} built in {time.perf_counter() - t:.2f} s (not timed)")

    print("\n# without network (CPU of this process, median of batches):")
    for what, value, unit in offline_costs(payloads):
        print(f"  {what:64} {value:9.1f} {unit}")
    print(f"# load average now: {load_average()}\n")

    runs: list[Run] = []
    stopped_early = False
    for rep in range(1, args.repeats + 1):
        shift = (rep - 1) % len(args.clients)
        order = args.clients[shift:] + args.clients[:shift]
        for mode in MODES:
            for client in order:
                if time.monotonic() - started > args.budget:
                    stopped_early = True
                    break
                run = one_run(client, mode, rep, payloads, args)
                runs.append(run)
                print(
                    f"rep {rep} {client:24} {mode:14} {run.elapsed:7.2f} s"
                    f" {run.users / run.elapsed:7.1f} users/s"
                    f" client {run.cpu_client * 1000 / run.users:6.3f} ms/user"
                    f" target {run.cpu_target * 1000 / run.users:6.3f} ms/user"
                    f" in target {run.in_target}  load {run.load_start} -> {run.load_end}",
                    flush=True,
                )
    if stopped_early:
        print(f"# budget of {args.budget:.0f} s spent: stopped before all runs were done")

    report(runs, args.users)
    print(
        "# client CPU = this process over the timed window (the client library, the event loop,"
        " json.dumps of the bodies, JSON parsing of the answers); target CPU = the scim2-server"
        " process over the same window"
    )
    print(f"# total {time.monotonic() - started:.0f} s; load average at the end {load_average()}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1))
        print(f"# runs written to {args.json}")

    bad = [r for r in runs if r.in_target != r.users]
    for r in bad:
        print(
            f"FAIL: {r.client} {r.mode} rep {r.rep}: target holds {r.in_target}, expected {r.users}"
        )
    ok = not bad and not stopped_early
    print("correctness: OK" if ok else "correctness: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
