"""Import and match an app's accounts: accounts/s and peak memory.

    .venv/bin/python bench/import.py [--accounts 100000] [--page-size 500] [--database-url URL]

Setup (not timed): N directory users (login, email), and a SCIM target in its own process that
lists N accounts page by page (generated on the fly, so the target costs little): 90% match a
user by userName (a third of them in another case), 5% only by e-mail, 5% nobody. Timed: an
import through the worker, from ``POST``-equivalent ``start_import`` to the completed import
(walk, page upserts, gone marking, matching, linking ~95% of the accounts). Baseline in the same
run: a bare httpx walk of the same pages (GET and JSON decoding only), so the ratio says what
provisiond adds on top of reading. Peak memory: growth of the resident-set high-water mark
(ru_maxrss) during the import; the mark only grows, so it includes everything the import held.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import free_port, wait_until_up  # noqa: E402

from provisiond.config import Settings  # noqa: E402
from provisiond.domain.apps import ImportSettings, ProvisioningSettings, ScimConnectorSettings  # noqa: E402
from provisiond.runtime import Runtime  # noqa: E402
from provisiond.services import app_accounts, apps  # noqa: E402
from provisiond.services.context import SYSTEM  # noqa: E402
from provisiond.store.db import Database  # noqa: E402
from provisiond.store.tables import Account, AppImport, User, utcnow  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def remote(i: int) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER], "id": f"r{i:07d}", "active": True,
                            "name": {"givenName": f"First{i}", "familyName": f"Last{i}"}}
    kind = i % 20
    if kind == 18:  # only the e-mail says who it is
        body["userName"] = f"legacy-{i}"
        body["emails"] = [{"value": f"user{i:06d}@example.org", "primary": True}]
    elif kind == 19:  # nobody's
        body["userName"] = f"stranger-{i}"
    else:
        login = f"user{i:06d}"
        body["userName"] = login.upper() if kind % 3 == 0 else login
        body["emails"] = [{"value": f"{login}@example.org", "primary": True}]
    return body


class Listing:
    """ASGI: GET /v2/Users pages of ``count`` generated accounts; discovery by scim2-server."""

    def __init__(self, count: int) -> None:
        from provisiond.demo.target import build

        self.count = count
        self.inner = build([])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != "/v2/Users":
            await self.inner(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        start = int(query.get("startIndex", ["1"])[0])
        size = int(query.get("count", ["100"])[0])
        items = [remote(i) for i in range(start - 1, min(self.count, start - 1 + size))]
        raw = json.dumps({"schemas": [LIST], "totalResults": self.count, "startIndex": start,
                          "itemsPerPage": len(items), "Resources": items}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/scim+json")]})
        await send({"type": "http.response.body", "body": raw})


def serve_target(port: int, count: int) -> None:
    import uvicorn

    uvicorn.run(Listing(count), host="127.0.0.1", port=port, log_level="warning", lifespan="on")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(rt: Runtime, count: int, base_url: str, page_size: int) -> str:
    with rt.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, rt.vault, name="bench", label="Bench",
            connector=ScimConnectorSettings(base_url=base_url),
            provisioning=ProvisioningSettings(imports=ImportSettings(page_size=page_size)),
        )
        app_id = app.id
    now = utcnow()
    for start in range(0, count, 5000):
        rows = []
        for i in range(start, min(count, start + 5000)):
            login = f"user{i:06d}"
            rows.append({"id": str(uuid.uuid4()), "login": login, "login_key": login,
                         "status": "active", "created_at": now, "updated_at": now,
                         "status_changed_at": now,
                         "profile": {"login": login, "email": f"{login}@example.org",
                                     "firstName": f"First{i}", "lastName": f"Last{i}"}})
        with rt.db.session() as session:
            session.execute(insert(User), rows)
    return app_id


def bare_walk(base_url: str, page_size: int) -> tuple[int, float]:
    started = time.perf_counter()
    seen, start = 0, 1
    with httpx.Client(timeout=60) as client:
        while True:
            body = client.get(f"{base_url}/Users", params={"startIndex": start, "count": page_size}).json()
            items = body["Resources"]
            if not items:
                break
            seen += len(items)
            start += len(items)
            if start > body["totalResults"]:
                break
    return seen, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--serve-target", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_target:
        serve_target(args.serve_target, args.accounts)
        return
    port = free_port()
    target = subprocess.Popen(
        [sys.executable, __file__, "--serve-target", str(port), "--accounts", str(args.accounts)],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    base_url = f"http://127.0.0.1:{port}/v2"
    try:
        wait_until_up(f"{base_url}/ServiceProviderConfig", process=target)
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            settings = Settings(data_dir=Path(tmp), database_url=url, secret_key="bench",
                                connector_allow_loopback=True)
            rt = Runtime(settings, db=Database(url))
            rt.migrate()
            app_id = seed(rt, args.accounts, base_url, args.page_size)
            listed, bare = bare_walk(base_url, args.page_size)
            print(f"bare walk: {listed} accounts in {bare:.2f} s ({listed / bare:,.0f}/s)")
            rt.start_worker()
            before = peak_mb()
            started = time.perf_counter()
            with rt.db.session() as session:
                import_id = app_accounts.start_import(session, SYSTEM, apps.get_app(session, app_id)).id
            walked: float | None = None
            while True:
                time.sleep(0.2)
                with rt.db.session() as session:
                    run = session.get(AppImport, import_id)
                    assert run is not None
                    if walked is None and run.accounts >= args.accounts:
                        walked = time.perf_counter() - started
                    if run.status in ("completed", "failed"):
                        counts, status, read = dict(run.counts), run.status, run.accounts
                        break
            elapsed = time.perf_counter() - started
            with rt.db.session() as session:
                linked = session.scalar(select(func.count()).select_from(Account))
            rt.stop()
            print(f"import {status}: {read} accounts in {elapsed:.2f} s ({read / elapsed:,.0f}/s), "
                  f"{linked} linked; counts {counts}")
            walk = walked if walked is not None else elapsed
            print(f"  of which the walk (pages upserted) {walk:.2f} s, then gone marking, matching "
                  f"and linking {elapsed - walk:.2f} s")
            print(f"ratio import / bare walk time: {elapsed / bare:.1f}x")
            print(f"peak RSS +{peak_mb() - before:.0f} MB during the import (total {peak_mb():.0f} MB)")
            print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    finally:
        target.terminate()
        target.wait(10)


if __name__ == "__main__":
    main()
