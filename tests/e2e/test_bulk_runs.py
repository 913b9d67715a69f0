"""A bulk change (a large group assigned) gets a run whose counts show its progress, over HTTP."""

from __future__ import annotations

import time

import httpx

from provisiond.domain.directory import Profile
from provisiond.runtime import Runtime
from provisiond.services import directory
from provisiond.services.context import SYSTEM
from provisiond.services.runs import BULK_RUN
from tests.e2e.conftest import assign, eventually, person, remote_user
from tests.e2e.test_groups import enabled_app


def test_assigning_a_large_group_starts_a_run_with_live_counts(
    api: httpx.Client, scim: httpx.Client, target: str, runtime: Runtime
) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    app = enabled_app(api, target, f"bulk-{suffix}")
    group = api.post("/groups", json={"name": f"Everyone {suffix}"}).json()
    count = BULK_RUN + 20
    with runtime.db.session() as session:  # through the services: 120 POSTs would be slow
        for i in range(count):
            profile = person(f"bulk{i}.{suffix}")["profile"]
            user = directory.create_user(session, SYSTEM, Profile(**profile), activate=True)
            directory.add_member(session, SYSTEM, group["id"], user.id)

    assignment = assign(api, app["id"], "group", group["id"])
    run_id = assignment["run_id"]
    assert run_id, assignment
    first = api.get(f"/runs/{run_id}").json()
    assert first["kind"] == "change" and first["total"] == count

    def finished() -> bool:
        return bool(api.get(f"/runs/{run_id}").json()["status"] == "succeeded")

    eventually(finished, timeout=120)
    run = api.get(f"/runs/{run_id}").json()
    assert run["counts"]["created"] == count and run["done"] == count
    assert remote_user(scim, f"bulk{count - 1}.{suffix}") is not None
    actions = [
        e["action"]
        for e in api.get("/logs", params={"app": app["id"], "limit": 500}).json()["items"]
    ]
    assert "app.run.start" in actions and "app.run.finish" in actions

    # A small change makes no run: its tasks are queued as they are.
    ada = api.post("/users", json=person(f"ada.{suffix}")).json()
    assert assign(api, app["id"], "user", ada["id"])["run_id"] is None
