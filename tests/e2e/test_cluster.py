"""Three `provisiond worker` processes on one PostgreSQL: an app's limits hold across them, and
1,000 users converge into a target that fails, throttles and stalls while a worker is killed twice.

Real processes, a real PostgreSQL, a real SCIM server (scim2-server behind tests/support/shaky.py,
which counts what the cluster tests check: requests in flight, requests per second, successful
creates per userName).
"""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from provisiond.domain.directory import Profile
from provisiond.engine import queue
from provisiond.runtime import Runtime
from provisiond.services import directory
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account, Task, WorkerProcess
from tests.cli.conftest import process
from tests.e2e.conftest import TARGET_TOKEN, eventually, person, scim_app
from tests.e2e.test_workers import api_only, worker_env  # noqa: F401  (a fixture)
from tests.support.servers import serve_app
from tests.support.shaky import ShakyTarget

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def worker(runtime: Runtime, log: Path, **env: str) -> Any:
    """One `provisiond worker` process (stopped with SIGTERM at the end of the block)."""
    return process(["worker"], worker_env(runtime, **env), log)


def live_workers(runtime: Runtime) -> int:
    with runtime.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(WorkerProcess)) or 0)


def enabled_app(api: httpx.Client, name: str, base_url: str, **provisioning: Any) -> str:
    body = scim_app(name, base_url)
    body["connector"] |= {"timeout_seconds": 1.5}
    app = api.post("/apps", json=body).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    answer = api.put(
        f"/apps/{app['id']}/provisioning", json={**settings, **provisioning, "enabled": True}
    )
    assert answer.status_code == 200, answer.text
    return str(app["id"])


def group_of(runtime: Runtime, api: httpx.Client, name: str, count: int) -> tuple[str, list[str]]:
    """A directory group of ``count`` new users, made through the services (count POSTs over
    HTTP would be most of the test's time); returns its id and the users' logins."""
    group = api.post("/groups", json={"name": name}).json()
    logins = [f"{name.lower()}.{n}" for n in range(count)]
    with runtime.db.session() as session:
        for login in logins:
            user = directory.create_user(
                session, SYSTEM, Profile(**person(login)["profile"]), activate=True
            )
            directory.add_member(session, SYSTEM, group["id"], user.id)
    return str(group["id"]), logins


def assign_group(api: httpx.Client, app_id: str, group_id: str) -> None:
    answer = api.post(
        f"/apps/{app_id}/assignments", json={"principal_type": "group", "principal_id": group_id}
    )
    assert answer.status_code == 201, answer.text


def tasks_by_status(runtime: Runtime, app_id: str) -> dict[str, int]:
    with runtime.db.session() as session:
        rows = session.execute(
            select(Task.status, func.count()).where(Task.app_id == app_id).group_by(Task.status)
        )
        return {str(status): int(n) for status, n in rows}


def accounts_of(runtime: Runtime, app_id: str) -> int:
    with runtime.db.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Account).where(
                    Account.app_id == app_id, Account.status == "active"
                )
            ) or 0
        )


def settled(runtime: Runtime, app_id: str, count: int) -> bool:
    statuses = tasks_by_status(runtime, app_id)
    busy = statuses.get(queue.QUEUED, 0) + statuses.get(queue.RUNNING, 0)
    return busy == 0 and accounts_of(runtime, app_id) == count


def remote_users(base_url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with httpx.Client(headers={"Authorization": f"Bearer {TARGET_TOKEN}"}, timeout=60) as client:
        while True:
            page = client.get(
                f"{base_url}/Users", params={"startIndex": len(found) + 1, "count": 500}
            ).json()
            found += page.get("Resources", [])
            if not page.get("Resources") or len(found) >= page["totalResults"]:
                return found


def test_an_apps_concurrency_and_rate_limit_hold_across_three_workers(
    runtime: Runtime, api_only: httpx.Client, tmp_path: Path  # noqa: F811
) -> None:
    # Slow enough that concurrency bounds it: without the cluster's cap, three workers
    # would each send an app's concurrency at once.
    narrow = ShakyTarget(TARGET_TOKEN, latency=0.05)
    metered = ShakyTarget(TARGET_TOKEN)
    with ExitStack() as stack:
        narrow_url = stack.enter_context(serve_app(narrow)) + "/v2"
        metered_url = stack.enter_context(serve_app(metered)) + "/v2"
        for n in range(3):
            stack.enter_context(worker(runtime, tmp_path / f"worker{n}.log"))
        eventually(lambda: live_workers(runtime) == 3, 60)
        two_at_once = enabled_app(api_only, "narrow", narrow_url, concurrency=2)
        ten_a_second = enabled_app(
            api_only, "metered", metered_url, concurrency=8, rate_limit_per_second=10
        )
        group, logins = group_of(runtime, api_only, "Limits", 30)
        assign_group(api_only, two_at_once, group)
        assign_group(api_only, ten_a_second, group)
        eventually(lambda: settled(runtime, two_at_once, len(logins)), 180)
        eventually(lambda: settled(runtime, ten_a_second, len(logins)), 180)
    assert narrow.max_in_flight <= 2, narrow.max_in_flight
    # 30 creates (and a lookup each, unless the app was seen empty) at 10 a second.
    sent = sorted(metered.arrivals)
    assert len(sent) >= len(logins)
    # Spaced a tenth of a second apart by the database's clock. Arrival times are read in
    # this (loaded) test process, where a request delayed on its way lands beside the next
    # ones: a second may show a few more, three seconds cannot show many more.
    assert metered.most_within(3.0) <= 3 * 10 + 3, metered.most_within(3.0)
    assert metered.most_within(1.0) <= 15, metered.most_within(1.0)
    assert sent[-1] - sent[0] >= (len(sent) - 1) / 10 * 0.9
    assert sorted(narrow.created) == sorted(logins) and set(narrow.created.values()) == {1}


def test_a_thousand_users_converge_while_the_target_fails_and_a_worker_is_killed_twice(
    runtime: Runtime, api_only: httpx.Client, tmp_path: Path  # noqa: F811
) -> None:
    # Every 13th request 500, every 400th 429 (the app pauses for a second), every 250th held
    # past the connector's timeout (1.5 s): the target was never sure to answer.
    target = ShakyTarget(
        TARGET_TOKEN, fail_every=13, throttle_every=400, stall_every=250, stall_seconds=3
    )
    patient = {"PROVISIOND_TASK_MAX_ATTEMPTS": "20"}
    with ExitStack() as stack:
        base = stack.enter_context(serve_app(target)) + "/v2"
        for n in range(2):
            stack.enter_context(worker(runtime, tmp_path / f"steady{n}.log", **patient))
        app_id = enabled_app(api_only, "crowd", base, concurrency=8)
        group, logins = group_of(runtime, api_only, "Crowd", 1000)
        assign_group(api_only, app_id, group)
        for cut in (250, 600):  # the third worker is SIGKILLed twice, mid-run
            with worker(runtime, tmp_path / f"killed-at-{cut}.log", **patient) as doomed:
                eventually(lambda cut=cut: accounts_of(runtime, app_id) >= cut, 240)
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(30)
        stack.enter_context(worker(runtime, tmp_path / "last.log", **patient))
        eventually(lambda: settled(runtime, app_id, len(logins)), 240)
        target.fail_every = target.throttle_every = target.stall_every = 0
        remote = remote_users(base)
    statuses = tasks_by_status(runtime, app_id)
    assert not statuses.get(queue.DEAD) and not statuses.get(queue.RUNNING), statuses
    by_name = {user["userName"]: user for user in remote}
    assert len(remote) == len(by_name) == len(logins)  # every account once
    for login in logins:
        assert by_name[login]["emails"][0]["value"] == f"{login}@example.com"
        assert by_name[login]["active"] is True
    # Exactly one create succeeded per user: retried and taken-over tasks looked first.
    assert sorted(target.created) == sorted(logins), len(target.created)
    assert set(target.created.values()) == {1}, target.created.most_common(3)
