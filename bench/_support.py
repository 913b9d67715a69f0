"""Shared plumbing for the benchmarks: real SCIM targets, a fresh database, directory set-up.

Everything here talks to 127.0.0.1 only. The SCIM targets are the stock scim2-server behind
uvicorn (``python -m provisiond.demo.target``), one subprocess each, so that a target never
shares the GIL with what is being measured.

This file is also a tiny entry point that runs a provisiond server (API + in-process worker)
in its own process, for benchmarks that must not share an interpreter with their client, and
a SCIM target that records every request it answers (``RequestLog``)::

    python bench/_support.py serve --database-url URL --port N
    python bench/_support.py target --port N --bearer-token TOKEN
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

BENCH_SECRET_KEY = "bench-secret-key"  # only encrypts the targets' throw-away bearer token
TARGET_TOKEN = "bench-target-token"
LOOPBACK = "127.0.0.1"
TARGET_PIDS: dict[str, int] = {}  # base URL -> pid of the scim2-server process serving it
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


# -- processes and ports ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(
    url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def scim_targets(count: int, token: str = TARGET_TOKEN) -> Iterator[list[str]]:
    """``count`` fresh scim2-server processes (started in parallel); yields their base URLs."""
    processes: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        for _ in range(count):
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "provisiond.demo.target",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--bearer-token",
                token,
            ]
            processes.append(subprocess.Popen(command, env=env))
            bases.append(f"http://{LOOPBACK}:{port}/v2")
        for base, process in zip(bases, processes, strict=True):
            # Ten targets importing at once on a busy two-core machine take more than 30 s.
            wait_until_up(f"{base}/ServiceProviderConfig", timeout=180.0, process=process)
            TARGET_PIDS[base] = process.pid
        yield bases
    finally:
        for base in bases:
            TARGET_PIDS.pop(base, None)
        for process in processes:
            _stop(process)


@contextlib.contextmanager
def scim_target(token: str = TARGET_TOKEN) -> Iterator[str]:
    with scim_targets(1, token) as bases:
        yield bases[0]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process so far (this one by default), from /proc."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ThreadCPU:
    """CPU seconds per thread of this process over a window, by thread name (the worker's
    event loop is ``MainThread`` here, its database thread ``provisiond-db_0``).

    Read from /proc every 20 ms by a thread of its own (a thread that ends within the window
    keeps what it last showed); its own CPU is reported as ``sampler``."""

    def __init__(self) -> None:
        import threading

        self._threading = threading
        self._names: dict[int, str] = {}
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _read(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        for thread in self._threading.enumerate():
            if thread.native_id is not None:
                self._names[thread.native_id] = thread.name
        for tid in os.listdir("/proc/self/task"):
            try:
                fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / tick
            self._first.setdefault(int(tid), seconds)
            self._last[int(tid)] = seconds

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._read()

    def __enter__(self) -> ThreadCPU:
        self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def seconds(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for tid, last in self._last.items():
            name = self._names.get(tid, f"thread {tid}")
            totals[name] = totals.get(name, 0.0) + last - self._first.get(tid, last)
        return totals


# -- a target that records what it receives ---------------------------------------------------------

PROBE_HEADER = "X-Bench-Probe"  # the benchmark's own checks: logged, but marked as such
LOG_PATH = "/_bench/requests"


@dataclass(frozen=True)
class Received:
    """One request as the target saw it: ``resource`` is the first path segment after /v2."""

    method: str
    resource: str
    status: int
    started: float  # time.time() in the target process (the same clock as ours)
    ended: float
    probe: bool

    @property
    def key(self) -> str:
        return f"{self.method} /{self.resource}"


class RequestLog:
    """ASGI middleware: records each request the wrapped SCIM application answers. ``GET
    /_bench/requests?since=K`` (itself unrecorded) answers the record from index K and how many
    requests are being answered right now."""

    def __init__(self, app: Any, prefix: str = "/v2/") -> None:
        self.app = app
        self.prefix = prefix
        self.entries: list[tuple[str, str, int, float, float, bool]] = []
        self.in_flight = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == LOG_PATH:
            await self._answer_log(scope, send)
            return
        started, status = time.time(), 0

        async def recorded(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, recorded)
        finally:
            self.in_flight -= 1
            resource = path.removeprefix(self.prefix).split("/", 1)[0]
            probe = any(name.lower() == PROBE_HEADER.lower().encode() for name, _ in scope["headers"])
            self.entries.append((scope["method"], resource, status, started, time.time(), probe))

    async def _answer_log(self, scope: Any, send: Any) -> None:
        query = dict(
            part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
        )
        since = int(query.get("since", 0))
        body = json.dumps({"in_flight": self.in_flight, "entries": self.entries[since:]}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Slow:
    """ASGI middleware: every request to /Users or /Groups answered ``latency`` seconds later (a distant app,
    so that concurrency rather than CPU bounds a run)."""

    def __init__(self, app: Any, latency: float) -> None:
        self.app, self.latency = app, latency

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if self.latency and scope["type"] == "http" and ("/Users" in path or "/Groups" in path):
            import asyncio

            await asyncio.sleep(self.latency)
        await self.app(scope, receive, send)


@contextlib.contextmanager
def recording_scim_target(token: str = TARGET_TOKEN, latency: float = 0.0) -> Iterator[str]:
    """One scim2-server process behind ``RequestLog``; yields its base URL (``.../v2``).
    ``latency``: seconds added to every SCIM request."""
    port = free_port()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "target",
        "--port",
        str(port),
        "--bearer-token",
        token,
        "--latency",
        str(latency),
    ]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    base = f"http://{LOOPBACK}:{port}/v2"
    try:
        wait_until_up(f"{base}/ServiceProviderConfig", process=process)
        TARGET_PIDS[base] = process.pid
        yield base
    finally:
        TARGET_PIDS.pop(base, None)
        _stop(process)


def received(base: str, since: int = 0) -> tuple[list[Received], int]:
    """What a ``recording_scim_target`` has answered, from its ``since``-th request on, and how
    many requests it is answering now. A target busy with a long request answers late."""
    root = base.removesuffix("/v2")
    response = httpx.get(f"{root}{LOG_PATH}", params={"since": since}, timeout=900)
    response.raise_for_status()
    body = response.json()
    return [Received(*entry) for entry in body["entries"]], int(body["in_flight"])


def wait_until_idle(base: str, timeout: float = 1800.0) -> float:
    """Wait until a ``recording_scim_target`` answers no request (an HTTP client that gave up
    does not stop the target working on its request); returns the seconds waited."""
    started = time.monotonic()
    while received(base, sys.maxsize)[1]:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{base} still busy after {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def _serve_target(argv: list[str]) -> None:
    import uvicorn

    from provisiond.demo.target import build

    parser = argparse.ArgumentParser(prog="bench/_support.py target")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--bearer-token", required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    args = parser.parse_args(argv)
    app = RequestLog(Slow(build([args.bearer_token]), args.latency))
    uvicorn.run(app, host=LOOPBACK, port=args.port, log_level="warning", lifespan="on")


def count_users(base: str, token: str = TARGET_TOKEN) -> int:
    response = httpx.get(
        f"{base}/Users",
        params={"count": 0},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return int(response.json()["totalResults"])


# -- the database ------------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_database(database_url: str | None, workdir: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file in ``workdir``, or ``bench_<random>`` on the
    PostgreSQL server named by ``database_url`` (created through its ``postgres`` database,
    dropped afterwards; the database name in the given URL is ignored)."""
    if not database_url:
        yield f"sqlite:///{workdir / 'provisiond.db'}"
        return
    if not database_url.startswith("postgresql"):
        raise SystemExit("--database-url must be postgresql+psycopg://user@127.0.0.1:5432/<db>")
    import psycopg

    parts = urlsplit(database_url)
    if parts.hostname not in (LOOPBACK, "localhost"):
        raise SystemExit("the benchmarks only talk to 127.0.0.1")
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    print(f"# PostgreSQL database {name} created on {parts.hostname}:{parts.port or 5432}")
    try:
        yield urlunsplit(("postgresql+psycopg", parts.netloc, f"/{name}", "", ""))
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"# PostgreSQL database {name} dropped")


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="provisiond-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_settings(database_url: str, data_dir: Path) -> Any:
    from provisiond.config import Settings

    # The bench targets listen on 127.0.0.1, which connectors may not reach by default.
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=BENCH_SECRET_KEY,
        connector_allow_loopback=True,
    )


def make_runtime(database_url: str, data_dir: Path) -> Any:
    from provisiond.runtime import Runtime

    runtime = Runtime(make_settings(database_url, data_dir))
    runtime.migrate()
    return runtime


# -- the directory and the apps (service layer, not timed) -------------------------------------------


@dataclass(frozen=True)
class BenchUser:
    id: str
    login: str
    status: str
    profile: dict[str, Any]

    def scim_payload(self) -> dict[str, Any]:
        """What provisiond sends on create (default_mapping), as a bare client would send it."""
        from provisiond.domain.directory import UserStatus
        from provisiond.engine.desired import DirectoryUser, default_mapping

        attributes = default_mapping(DirectoryUser(self.id, UserStatus(self.status), self.profile))
        return {"schemas": [CORE_USER], **attributes}


def bench_profile(i: int, prefix: str = "user", width: int = 5) -> dict[str, str]:
    """The profile of the i-th bench user: one shape for the directory and the bare clients."""
    login = f"{prefix}{i:0{width}d}.bench"
    return {
        "login": login,
        "email": f"{login}@example.com",
        "firstName": f"First{i}",
        "lastName": f"Last{i}",
        "department": "Benchmarks",
    }


def create_directory(
    runtime: Any, count: int, group_name: str, prefix: str = "user"
) -> tuple[str, list[BenchUser]]:
    """``count`` active users, all members of one new group; returns (group id, users)."""
    from provisiond.domain.directory import Profile
    from provisiond.services import directory
    from provisiond.services.context import SYSTEM

    users: list[BenchUser] = []
    with runtime.db.session() as session:
        group = directory.create_group(session, SYSTEM, group_name, "benchmark")
        group_id = group.id
        for i in range(count):
            profile = Profile(**bench_profile(i, prefix))
            row = directory.create_user(session, SYSTEM, profile, activate=True)
            users.append(BenchUser(row.id, row.login, row.status, dict(row.profile)))
        for member in users:
            directory.add_member(session, SYSTEM, group_id, member.id)
    return group_id, users


def create_enabled_app(
    runtime: Any,
    name: str,
    base_url: str,
    *,
    concurrency: int,
    timeout_seconds: float | None = None,
) -> str:
    """An app with a bearer-token SCIM connector, provisioning enabled (no full sync);
    ``timeout_seconds`` overrides the connector's HTTP timeout."""
    from provisiond.domain.apps import BearerAuth, ProvisioningSettings, ScimConnectorSettings
    from provisiond.services import apps
    from provisiond.services.context import SYSTEM

    timeout = {} if timeout_seconds is None else {"timeout_seconds": timeout_seconds}
    connector = ScimConnectorSettings(
        base_url=base_url, auth=BearerAuth(token=TARGET_TOKEN), **timeout
    )
    provisioning = ProvisioningSettings(concurrency=concurrency)
    with runtime.db.session() as session:
        app = apps.create_app(
            session,
            SYSTEM,
            runtime.vault,
            name=name,
            label=name.title(),
            connector=connector,
            provisioning=provisioning,
        )
        apps.set_provisioning(
            session, SYSTEM, app, provisioning.model_copy(update={"enabled": True})
        )
        return str(app.id)


def assign_group(runtime: Any, app_id: str, group_id: str) -> None:
    """Assign the group: enqueues one task per member, in the same transaction."""
    from provisiond.services import assignments
    from provisiond.services.context import SYSTEM

    with runtime.db.session() as session:
        assignments.create_assignment(
            session,
            SYSTEM,
            app_id,
            principal_type="group",
            principal_id=group_id,
            role=None,
            priority=None,
        )


def task_counts(runtime: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from provisiond.store.tables import Task

    with runtime.db.session() as session:
        rows = session.execute(select(Task.status, func.count()).group_by(Task.status)).all()
    return {status: count for status, count in rows}


# -- figures -----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}"


def banner(title: str, **options: Any) -> None:
    print(f"== {title}")
    print(f"# machine: {machine()}")
    print(f"# date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print("# options: " + ", ".join(f"{k}={v}" for k, v in options.items()))
    print(f"# load average at start: {load_average()}")


def load_average() -> str:
    """The 1/5/15-minute load: other work on the machine shows in every wall-clock figure."""
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


# -- a provisiond server in its own process ----------------------------------------------------------


@contextlib.contextmanager
def provisiond_server(
    database_url: str, data_dir: Path, startup_timeout: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """provisiond (REST API + in-process worker thread) in a subprocess; yields its base URL.

    Its output goes to ``data_dir/server.log``, printed if it fails to start or exits early."""
    port = free_port()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "serve",
        "--database-url",
        database_url,
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://{LOOPBACK}:{port}"
    try:
        try:
            wait_until_up(f"{base}/readyz", timeout=startup_timeout, process=process)
        except RuntimeError:
            sys.stderr.write(log_path.read_text(errors="replace")[-6000:])
            raise
        yield base, process
    finally:
        _stop(process)
        output = log_path.read_text(errors="replace").strip()
        if output:
            print(f"# provisiond server output (last lines):\n{output[-3000:]}")


def _serve(argv: list[str]) -> None:
    import uvicorn

    from provisiond.api import create_app

    parser = argparse.ArgumentParser(prog="bench/_support.py serve")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    from provisiond.runtime import Runtime

    runtime = Runtime(make_settings(args.database_url, args.data_dir))
    app = create_app(runtime=runtime, start_worker=True)
    uvicorn.run(app, host=LOOPBACK, port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        _serve(sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "target":
        _serve_target(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
