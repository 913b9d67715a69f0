"""provisiond's /scim/v2 beside stock scim2-server, both holding the same N users.

Filters (``userName eq``, ``emails.value co``, ``meta.lastModified gt``), then POST and PATCH
throughput: sequential requests from one client for a fixed time each, requests per second
and the ratio provisiond / scim2-server. Each server runs in its own process under uvicorn:
provisiond on SQLite (the default store) with its in-process worker, scim2-server's
``ASGIApplication`` with ``AsyncInMemoryStorage``::

    python bench/scim_server.py [--users 100000] [--seconds 8]

The users are loaded directly (SQL inserts; scim2-server's storage ``create``), not over HTTP.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import (
    BENCH_SECRET_KEY,
    LOOPBACK,
    free_port,
    make_settings,
    wait_until_up,
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
STOCK_TOKEN = "bench-stock-token"
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def profile(i: int) -> dict[str, str]:
    return {"login": f"user{i:06d}", "email": f"user{i:06d}@example.com",
            "firstName": f"First{i}", "lastName": f"Last{i}"}


def scim_user(i: int) -> dict[str, Any]:
    p = profile(i)
    return {"schemas": [USER], "userName": p["login"], "active": True,
            "name": {"givenName": p["firstName"], "familyName": p["lastName"]},
            "emails": [{"value": p["email"], "type": "work", "primary": True}]}


def seed_provisiond(database_url: str, data_dir: Path, users: int) -> str:
    """The users as rows (updated_at one second apart), and a SCIM client's token."""
    from sqlalchemy import insert

    from provisiond.runtime import Runtime
    from provisiond.services import scim_clients
    from provisiond.services.context import SYSTEM
    from provisiond.store.tables import User

    runtime = Runtime(make_settings(database_url, data_dir))
    runtime.migrate()
    with runtime.db.session() as session:
        token = scim_clients.create_client(session, SYSTEM, "bench")[0]
    batch: list[dict[str, Any]] = []
    for i in range(users):
        p = profile(i)
        moment = BASE_TIME + timedelta(seconds=i)
        batch.append({"id": f"00000000-0000-4000-8000-{i:012d}", "login": p["login"],
                      "login_key": p["login"], "status": "active", "profile": p,
                      "created_at": moment, "updated_at": moment, "status_changed_at": moment})
        if len(batch) == 5000 or i == users - 1:
            with runtime.db.session() as session:
                session.execute(insert(User), batch)
            batch = []
    runtime.db.dispose()
    return token


def serve_stock(port: int, users: int) -> None:
    """scim2-server's ASGI application, its in-memory storage loaded with the users."""
    import uvicorn

    from provisiond.demo.target import BearerTokenASGIApplication

    app = BearerTokenASGIApplication([STOCK_TOKEN])
    storage = app.storage.storage  # type: ignore[attr-defined]
    resource_type = app.service.get_resource_type("User")
    model = app.service.get_model(resource_type)
    # InMemoryStorage.create checks uniqueness against every stored user (quadratic: 230 s
    # for 100,000); the users are unique by construction, so they are stored as create would.
    from scim2_models import Meta

    for i in range(users):
        resource = model.model_validate(scim_user(i))
        resource.id = storage.generate_id(resource_type, resource)
        now = storage.clock()
        resource.meta = Meta(resource_type="User", created=now, last_modified=now,
                             version=storage.next_version())
        storage._store(resource, storage._values_of(resource))
    uvicorn.run(app, host=LOOPBACK, port=port, log_level="warning")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Requests per second of one call on one server, measured in slices that alternate with
    the other server's: the two share whatever load the machine has meanwhile. Also the
    server process's CPU time per request, steadier than the rate on a loaded machine."""

    def __init__(self, call: Callable[[int], httpx.Response], pid: int) -> None:
        self.call, self.pid, self.done, self.elapsed, self.cpu = call, pid, 0, 0.0, 0.0

    def run(self, seconds: float) -> None:
        started, cpu = time.perf_counter(), cpu_seconds(self.pid)
        while time.perf_counter() - started < seconds:
            answer = self.call(self.done)
            assert answer.status_code < 300, answer.text[:300]
            self.done += 1
        self.elapsed += time.perf_counter() - started
        self.cpu += cpu_seconds(self.pid) - cpu

    @property
    def rate(self) -> float:
        return self.done / self.elapsed

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.done


STEP = 7919  # a prime: the users asked for spread over the whole directory


def calls(client: httpx.Client, users: int, threshold: str) -> dict[str, Callable[[int], Any]]:
    ids = [client.get("Users", params={"filter": f'userName eq "user{i:06d}"'}).json()
           ["Resources"][0]["id"] for i in range(0, users, max(1, users // 200))]
    return {
        "userName eq": lambda n: client.get("Users", params={
            "filter": f'userName eq "user{(n * STEP) % users:06d}"'}),
        "emails.value co": lambda n: client.get("Users", params={
            "filter": f'emails.value co "{(n * STEP) % users:06d}@"', "count": 10}),
        "meta.lastModified gt": lambda n: client.get("Users", params={
            "filter": f'meta.lastModified gt "{threshold}"', "count": 10}),
        "POST /Users": lambda n: client.post("Users", json=scim_user(users + 1_000_000 + n)),
        "PATCH /Users/{id}": lambda n: client.patch(
            f"Users/{ids[n % len(ids)]}", json={"schemas": [PATCH], "Operations": [
                {"op": "replace", "path": "displayName", "value": f"Name {n}"}]}),
    }


def load() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    # A short run of one measure (e.g. --only "userName eq") under a loaded machine.
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    work = Path(tempfile.mkdtemp(prefix="bench-scim-"))
    database_url = f"sqlite:///{work / 'provisiond.db'}"
    print(f"# {args.users} users, {args.seconds} s a measure; load before: "
          f"{load()}")
    started = time.perf_counter()
    token = seed_provisiond(database_url, work, args.users)
    print(f"# provisiond seeded in {time.perf_counter() - started:.1f} s")
    ours_port, stock_port = free_port(), free_port()
    env = {**os.environ, "PROVISIOND_SECRET_KEY": BENCH_SECRET_KEY}
    here = str(Path(__file__).resolve().parent)
    ours = subprocess.Popen([sys.executable, f"{here}/_support.py", "serve", "--database-url",
                             database_url, "--data-dir", str(work), "--port", str(ours_port)],
                            env=env)
    stock = subprocess.Popen([sys.executable, __file__, "stock", "--port", str(stock_port),
                              "--users", str(args.users)], env=env)
    try:
        wait_until_up(f"http://{LOOPBACK}:{ours_port}/healthz", timeout=120, process=ours)
        started = time.perf_counter()
        wait_until_up(f"http://{LOOPBACK}:{stock_port}/v2/ServiceProviderConfig", timeout=600,
                      process=stock)
        print(f"# scim2-server seeded in {time.perf_counter() - started:.1f} s (while up)")
        clients = {
            "provisiond": httpx.Client(base_url=f"http://{LOOPBACK}:{ours_port}/scim/v2/",
                                       headers={"Authorization": f"Bearer {token}"}, timeout=120),
            "scim2-server": httpx.Client(base_url=f"http://{LOOPBACK}:{stock_port}/v2/",
                                         headers={"Authorization": f"Bearer {STOCK_TOKEN}"},
                                         timeout=120),
        }
        pids = {"provisiond": ours.pid, "scim2-server": stock.pid}
        meters: dict[str, dict[str, Meter]] = {}
        for name, client in clients.items():
            newest = client.get("Users", params={
                "filter": f'userName eq "user{args.users - 10:06d}"'}).json()["Resources"][0]
            threshold = newest["meta"]["lastModified"]
            meters[name] = {k: Meter(c, pids[name])
                            for k, c in calls(client, args.users, threshold).items()
                            if not args.only or k in args.only}
        for key in meters["provisiond"]:
            for _ in range(4):
                for name in clients:
                    meters[name][key].run(args.seconds / 4)
        print(f"# load after: {load()}")
        print("| measure | provisiond req/s | scim2-server req/s | ratio "
              "| server CPU ms/request: provisiond / scim2-server (ratio) |")
        print("| --- | --- | --- | --- | --- |")
        for key, ours_meter in meters["provisiond"].items():
            stock_meter = meters["scim2-server"][key]
            a, b = ours_meter.rate, stock_meter.rate
            c, d = ours_meter.cpu_ms, stock_meter.cpu_ms
            print(f"| {key} | {a:.1f} | {b:.1f} | {a / b:.2f}x "
                  f"| {c:.2f} / {d:.2f} ({d / c:.2f}x) |")
    finally:
        for process in (ours, stock):
            process.terminate()
            process.wait(30)
        shutil.rmtree(work, ignore_errors=True)  # 100,000 users' database: not left in /tmp


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "stock":
        parsed = argparse.ArgumentParser()
        parsed.add_argument("--port", type=int, required=True)
        parsed.add_argument("--users", type=int, required=True)
        stock_args = parsed.parse_args(sys.argv[2:])
        serve_stock(stock_args.port, stock_args.users)
    else:
        main()
