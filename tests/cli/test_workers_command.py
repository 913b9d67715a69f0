"""`provisiond workers` and /readyz: the worker beside the API is seen beating."""

from __future__ import annotations

import json
import os

import httpx

from tests.cli.conftest import Run, flat, ok
from tests.e2e.conftest import eventually


def test_the_servers_worker_is_listed_running(cli: Run, server: str) -> None:
    def listed() -> list[dict[str, object]]:
        return list(json.loads(ok(cli("--json", "workers")).stdout)["items"])

    (worker,) = eventually(listed, 30)
    assert (worker["pid"], worker["state"]) == (os.getpid(), "running")
    table = flat(ok(cli("workers")).stdout)
    assert "running" in table and str(worker["id"]) in table
    ready = httpx.get(f"{server}/readyz").json()
    assert ready == {"status": "ok", "database": "ok", "worker": True}


def test_workers_needs_a_token(server: str) -> None:
    assert httpx.get(f"{server}/api/v1/workers").status_code == 401
